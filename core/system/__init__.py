"""This machine as World Studio sees it: the system report of ``worldstudio doctor`` and the
studio's Help ▸ System report."""

from worldstudio.core.system.report import format_report, system_report

__all__ = ["format_report", "system_report"]
