"""Presets and action strings -> editable keyframes (one undoable step).

The presets come from :data:`worldstudio.core.geometry.presets.PRESETS`; each preset's options become form
fields (their defaults as placeholders), so new presets appear here without studio changes.
Action strings are the ``actions`` preset.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from worldstudio.core.errors import WorldStudioError
from worldstudio.studio import commands
from worldstudio.studio.document import ProjectDocument
from worldstudio.studio.field_guard import guard_fields

ViewProvider = Callable[[], "tuple[np.ndarray, float] | None"]


ACTION_EXAMPLE = "(FN)(FN)(fLN)(SR)"


def action_legend() -> QLabel:
    """What the codes of an action string mean (from core.geometry.actions), with an example."""
    from worldstudio.core.geometry.actions import STEERINGS, TRANSLATIONS

    def codes(table: dict[str, str]) -> str:
        return " · ".join(f"<b>{code}</b> {what}" for code, what in table.items())

    label = QLabel(
        "Each step is <b>(move, turn)</b> in parentheses, one step per keyframe.<br>"
        f"Move: {codes(TRANSLATIONS)}<br>"
        f"Turn: {codes(STEERINGS)}<br>"
        f"Example: <code>{ACTION_EXAMPLE}</code> = forward, forward, forward-left, then turn "
        "right on the spot."
    )
    label.setObjectName("actionLegend")
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    return label


def _default_text(param) -> str:
    d = param.default
    if d is None:
        return ""
    if isinstance(d, tuple | list):
        return ",".join(f"{v:g}" for v in d)
    return f"{d:g}" if isinstance(d, float) else str(d)


class PathDialog(QDialog):
    """Build the camera path from a preset (or an action string) starting at a chosen camera."""

    def __init__(
        self,
        doc: ProjectDocument,
        current_view: ViewProvider,
        parent: QWidget | None = None,
        preset: str | None = None,
    ):
        super().__init__(parent)
        from worldstudio.core.geometry.presets import PRESETS

        self.presets = PRESETS
        self.setWindowTitle("Camera path: presets and action strings")
        self.setMinimumWidth(660)
        self.doc = doc
        self.current_view = current_view
        self.keyframes: list = []
        self.fields: dict[str, QLineEdit] = {}

        self.preset = QComboBox()
        for name, p in PRESETS.items():
            self.preset.addItem(name.replace("_", " "), name)
            self.preset.setItemData(self.preset.count() - 1, p.summary, 3)  # 3 = ToolTipRole
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setObjectName("hint")
        self.start = QComboBox()
        self.start.addItems(["current view", "playhead camera", "first keyframe"])
        self.options_box = QGroupBox("Options")
        self.options_form = QFormLayout(self.options_box)
        self.result = QLabel()
        self.result.setWordWrap(True)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Replace path")
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)

        top = QFormLayout()
        top.addRow("Preset", self.preset)
        top.addRow("", self.summary)
        top.addRow("Start from", self.start)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.options_box)
        layout.addWidget(self.result)
        layout.addWidget(self.buttons)

        self.preset.currentIndexChanged.connect(self._preset_changed)
        self.start.currentIndexChanged.connect(self._update)
        if preset is not None:
            self.preset.setCurrentIndex(max(self.preset.findData(preset), 0))
        self._preset_changed()

    @property
    def preset_name(self) -> str:
        return self.preset.currentData()

    def _preset_changed(self, *_args) -> None:
        p = self.presets[self.preset_name]
        self.summary.setText(p.summary)
        while self.options_form.rowCount():
            self.options_form.removeRow(0)
        self.fields = {}
        for param in p.params:
            ed = QLineEdit()
            ed.setPlaceholderText(
                _default_text(param) or ("required" if param.name == "text" else "automatic")
            )
            tip = param.help + (f" ({' / '.join(param.choices)})" if param.choices else "")
            ed.setToolTip(tip)
            if param.name == "text":
                ed.setPlaceholderText(ACTION_EXAMPLE)
            ed.textChanged.connect(self._update)
            label = QLabel(param.name.replace("_", " "))
            label.setToolTip(tip)
            self.options_form.addRow(label, ed)
            self.fields[param.name] = ed
            if param.name == "text":
                self.options_form.addRow("", action_legend())
        self.options_box.setVisible(bool(p.params))
        guard_fields(self)
        self._update()

    def set_option(self, name: str, text: str) -> None:
        self.fields[name].setText(text)

    def _start_camera(self) -> tuple[np.ndarray, float]:
        from worldstudio.core.geometry.transforms import pose_matrix

        p = self.doc.project
        kfs = p.camera_path.keyframes
        which = self.start.currentText()
        if which == "current view":
            view = self.current_view()
            if view is not None:
                return view
        if which in ("current view", "playhead camera"):
            pose = self.doc.pose_at(self.doc.playhead)
            if pose is not None:
                return pose
        if kfs:
            return pose_matrix(kfs[0].position, kfs[0].orientation), kfs[0].fov
        fov = 60.0
        if p.intrinsics is not None:
            from worldstudio.core.geometry.camera import fov_from_intrinsics

            fov = float(fov_from_intrinsics(np.array(p.intrinsics.K), p.intrinsics.height))
        return np.eye(4), fov

    def build(self) -> list:
        """The keyframes the current settings give (raises WorldStudioError with a reason)."""
        from worldstudio.core.geometry.presets import apply_preset

        p = self.doc.project
        c2w, fov = self._start_camera()
        options = {k: ed.text().strip() for k, ed in self.fields.items() if ed.text().strip()}
        if "text" in self.fields and "text" not in options:
            raise WorldStudioError(f"type an action string, e.g. {ACTION_EXAMPLE}")
        path = apply_preset(
            self.preset_name,
            c2w,
            fov,
            p.generation.height,
            p.generation.width,
            p.camera_path.settings.fps,
            **options,
        )
        return list(path.keyframes)

    def _update(self, *_args) -> None:
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        try:
            self.keyframes = self.build()
        except (WorldStudioError, TypeError, ValueError, KeyError) as exc:
            self.keyframes = []
            self.result.setText(f"<span style='color:#ff8a7a'>{exc}</span>")
            ok.setEnabled(False)
            return
        seconds = sum(k.transition for k in self.keyframes[:-1])
        said = ""
        if "text" in self.fields:  # what the typed steps do, in words
            from worldstudio.core.geometry.actions import actions_phrase, parse_actions

            said = f"<i>{actions_phrase(parse_actions(self.fields['text'].text()))}</i><br>"
        self.result.setText(
            f"{said}{len(self.keyframes)} keyframes, {seconds:.2f} s. They replace the "
            f"current {len(self.doc.project.camera_path.keyframes)} keyframes "
            "(undoable)."
        )
        ok.setEnabled(bool(self.keyframes))

    def _accept(self) -> None:
        if self.keyframes:
            commands.replace_keyframes(
                self.doc, self.keyframes, f"Path: {self.preset.currentText()}"
            )
            self.accept()
