"""The Generate dock: settings form, LoRA table, runs box and the live preview of a run."""

from worldstudio.studio.panels.generate.panel import GeneratePanel

__all__ = ["GeneratePanel"]
