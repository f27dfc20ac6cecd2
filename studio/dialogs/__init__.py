"""Dialogs opened from the main window: the model manager, File > New from image, the pre-flight
checks, an internal error and Help > System report."""
