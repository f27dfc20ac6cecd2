"""The studio's 3D viewport (vispy inside Qt). See :mod:`studio.viewport.widget`."""

from studio.viewport.widget import Viewport

__all__ = ["Viewport"]
