"""World Studio's desktop app (PySide6). Start it with ``python -m worldstudio.studio``."""
