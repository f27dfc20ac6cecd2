"""The studio's 3D viewport (vispy inside Qt). See :mod:`worldstudio.studio.viewport.widget`."""

from worldstudio.studio.viewport.widget import Viewport

__all__ = ["Viewport"]
