"""Dialogs opened from the main window's menus: the model manager and File > New from image."""
