"""The pyqtgraph timeline: frame ruler, rounds, keyframes, entity prompts, monitors, playhead."""

from worldstudio.studio.timeline.widget import TimelineWidget

__all__ = ["TimelineWidget"]
