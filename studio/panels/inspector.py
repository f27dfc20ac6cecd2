"""The inspector: exact numbers of the selected keyframe, monitor, entity or round (or the project
when nothing is selected). Every field edit is a command; the fields follow the model."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from worldstudio.core.geometry.transforms import quat_to_ypr, ypr_to_quat
from worldstudio.studio import commands
from worldstudio.studio.document import ProjectDocument, Selection
from worldstudio.studio.field_guard import being_edited, guard
from worldstudio.studio.widgets import CommitTextEdit, float_spin, show_value

EASINGS = ["linear", "ease_in", "ease_out", "ease_in_out"]


def _same_rotation(a, b, tolerance_deg: float = 0.01) -> bool:
    dot = abs(float(np.dot(np.asarray(a, np.float64), np.asarray(b, np.float64))))
    return 2.0 * math.degrees(math.acos(min(dot, 1.0))) < tolerance_deg


class _PoseFields:
    """Position x, y, z and yaw / pitch / roll (degrees) + fov, with the quaternion shown exactly."""

    def __init__(self, form: QFormLayout, on_edit: Callable[[str], None]):
        self.pos = [float_spin(-1e4, 1e4, 4, 0.05, compact=True) for _ in range(3)]
        self.ypr = [float_spin(-180.0, 180.0, 3, 1.0, suffix=" °", compact=True) for _ in range(3)]
        self.ypr[1].setRange(-90.0, 90.0)
        self.fov = float_spin(1.0, 179.0, 3, 1.0, suffix=" °", compact=True)
        self.quat = QLabel()
        self.quat.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.quat.setObjectName("quaternion")
        self.quat.setToolTip("The orientation as stored: a unit quaternion (w, x, y, z)")
        self.quat.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        row = QHBoxLayout()
        for s in self.pos:
            row.addWidget(s)
        form.addRow("Position x y z", row)
        row = QHBoxLayout()
        for s in self.ypr:
            row.addWidget(s)
        form.addRow("Yaw pitch roll", row)
        form.addRow("Quaternion", self.quat)
        form.addRow("Vertical fov", self.fov)
        for s in self.pos:
            s.valueChanged.connect(lambda _v: on_edit("position"))
        for s in self.ypr:
            s.valueChanged.connect(lambda _v: on_edit("orientation"))
        self.fov.valueChanged.connect(lambda _v: on_edit("fov"))

    def show(self, position, orientation, fov) -> None:
        for s, v in zip(self.pos, position, strict=True):
            show_value(s, float(v), keep_focused=True)
        # The angles are shown again only when they no longer say the model's rotation: the same
        # rotation has other (yaw, pitch, roll), which must not jump under a spinning field.
        if not any(being_edited(s) for s in self.ypr) and not _same_rotation(
            self.orientation(), orientation
        ):
            for s, v in zip(self.ypr, quat_to_ypr(orientation), strict=True):
                show_value(s, round(v, 6) + 0.0)
        self.quat.setText("w {:+.5f}   x {:+.5f}\ny {:+.5f}   z {:+.5f}".format(*orientation))
        if fov is not None:
            show_value(self.fov, float(fov), keep_focused=True)

    def position(self) -> tuple[float, float, float]:
        return tuple(s.value() for s in self.pos)  # type: ignore[return-value]

    def orientation(self) -> tuple[float, float, float, float]:
        return ypr_to_quat(*(s.value() for s in self.ypr))


class InspectorPanel(QWidget):
    """The inspector dock's widget."""

    def __init__(self, doc: ProjectDocument, parent: QWidget | None = None):
        super().__init__(parent)
        self.doc = doc
        self.stack = QStackedWidget()
        self.title = QLabel()
        self.title.setObjectName("panelTitle")
        self.pages: dict[str, QWidget] = {}
        self._build_project_page()
        self._build_keyframe_page()
        self._build_monitor_page()
        self._build_entity_page()
        self._build_round_page()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(self.stack)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addWidget(self.title)
        layout.addWidget(scroll, 1)
        doc.changed.connect(self.refresh)
        doc.selection_changed.connect(self.refresh)
        self.refresh()

    # ------------------------------------------------------------------ pages
    def _page(self, name: str) -> QFormLayout:
        page = QWidget()
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        column = QVBoxLayout(page)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(form)
        column.addStretch(1)  # the rows stay together at the top, whatever the dock's height
        self.pages[name] = page
        self.stack.addWidget(page)
        return form

    def _build_project_page(self) -> None:
        form = self._page("project")
        self.p_name = QLineEdit()
        self.p_name.editingFinished.connect(
            lambda: (
                self.p_name.text().strip()
                and self.p_name.text() != self.doc.project.name
                and commands.rename_project(self.doc, self.p_name.text().strip())
            )
        )
        form.addRow("Name", self.p_name)
        self.p_summary = QLabel()
        self.p_summary.setWordWrap(True)
        form.addRow("Scene", self.p_summary)
        self.p_fps = QSpinBox()
        self.p_fps.setRange(1, 240)
        self.p_fps.setKeyboardTracking(False)
        self.p_fps.valueChanged.connect(lambda v: commands.set_path_settings(self.doc, fps=v))
        form.addRow("Path fps", self.p_fps)
        self.p_tension = float_spin(-1.0, 1.0, 2, 0.1, compact=True)
        self.p_tension.valueChanged.connect(
            lambda v: commands.set_path_settings(self.doc, "tension", tension=v)
        )
        form.addRow("Path tension", self.p_tension)
        self.p_loop = QCheckBox("loop to the start")
        self.p_loop.toggled.connect(lambda v: commands.set_path_settings(self.doc, loop=v))
        form.addRow("", self.p_loop)
        self.p_frames = QSpinBox()
        self.p_frames.setRange(5, 1001)
        self.p_frames.setSingleStep(4)
        self.p_frames.setKeyboardTracking(False)
        self.p_frames.valueChanged.connect(self._set_frames_per_round)
        form.addRow("Frames per round", self.p_frames)
        self.p_size = QLabel()
        self.p_size.setWordWrap(True)
        form.addRow("Video", self.p_size)
        hint = QLabel(
            "Select a keyframe, round, entity or monitor in the timeline or the viewport "
            "to edit it here."
        )
        hint.setWordWrap(True)
        hint.setObjectName("hint")
        form.addRow(hint)

    def _set_frames_per_round(self, v: int) -> None:
        v = max(5, 4 * round((v - 1) / 4) + 1)
        if v != self.doc.project.generation.frames_per_round:
            commands.set_generation(self.doc, frames_per_round=v)

    def _build_keyframe_page(self) -> None:
        form = self._page("keyframe")
        self.k_thumb = QLabel("thumbnail")
        self.k_thumb.setObjectName("thumbnail")
        self.k_thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.k_thumb.setMinimumSize(240, 135)
        form.addRow(self.k_thumb)
        self.k_where = QLabel()
        form.addRow("Time", self.k_where)
        self.k_pose = _PoseFields(form, self._keyframe_edited)
        self.k_transition = float_spin(0.001, 3600.0, 3, 0.25, suffix=" s", compact=True)
        self.k_transition.valueChanged.connect(lambda _v: self._keyframe_edited("transition"))
        form.addRow("Transition to next", self.k_transition)
        self.k_easing = QComboBox()
        self.k_easing.addItems(EASINGS)
        self.k_easing.currentTextChanged.connect(lambda _t: self._keyframe_edited("easing"))
        form.addRow("Easing", self.k_easing)
        row = QHBoxLayout()
        go = QPushButton("Go to")
        go.setToolTip("Move the playhead to this keyframe")
        go.clicked.connect(self._goto_keyframe)
        delete = QPushButton("Delete")
        delete.clicked.connect(
            lambda: self._sel_id() and commands.delete_keyframe(self.doc, self._sel_id())
        )
        row.addWidget(go)
        row.addWidget(delete)
        form.addRow(row)

    def _build_monitor_page(self) -> None:
        form = self._page("monitor")
        self.m_name = QLineEdit()
        self.m_name.editingFinished.connect(self._monitor_renamed)
        form.addRow("Name", self.m_name)
        self.m_enabled = QCheckBox("generates every round")
        self.m_enabled.toggled.connect(
            lambda v: self._sel_id() and commands.set_monitor_enabled(self.doc, self._sel_id(), v)
        )
        form.addRow("Enabled", self.m_enabled)
        self.m_pose = _PoseFields(form, self._monitor_edited)
        self.m_entities = QListWidget()
        self.m_entities.setMaximumHeight(110)
        self.m_entities.setToolTip(
            "The entities this monitor keeps alive while the main camera looks elsewhere"
        )
        self.m_entities.itemChanged.connect(self._monitor_entities_edited)
        form.addRow("Watches", self.m_entities)
        self.m_scene = CommitTextEdit()
        self.m_scene.setMaximumHeight(80)
        self.m_scene.setToolTip(
            "The scene as this monitor sees it: the 'scene:' part of its prompt. Empty: the "
            "round's scene text. Its entities' prompts follow as 'foreground:'."
        )
        self.m_scene.committed.connect(self._monitor_scene_edited)
        form.addRow("Scene", self.m_scene)
        self.m_prompt = QLabel()
        self.m_prompt.setObjectName("hint")
        self.m_prompt.setWordWrap(True)
        self.m_prompt.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("Round 1 prompt", self.m_prompt)
        delete = QPushButton("Remove monitor")
        delete.clicked.connect(
            lambda: self._sel_id() and commands.remove_monitor(self.doc, self._sel_id())
        )
        form.addRow(delete)

    def _build_entity_page(self) -> None:
        form = self._page("entity")
        self.e_name = QLineEdit()
        self.e_name.editingFinished.connect(self._entity_renamed)
        form.addRow("Name", self.e_name)
        self.e_anchor = [float_spin(-1e4, 1e4, 4, 0.05, compact=True) for _ in range(3)]
        row = QHBoxLayout()
        for s in self.e_anchor:
            row.addWidget(s)
            s.valueChanged.connect(self._entity_anchor_edited)
        form.addRow("Anchor x y z", row)
        self.e_defined = QLabel()
        self.e_defined.setWordWrap(True)
        form.addRow("Defined from", self.e_defined)
        self.e_prompts_box = QGroupBox("What it does, per round")
        self.e_prompts_form = QFormLayout(self.e_prompts_box)
        form.addRow(self.e_prompts_box)
        self.e_prompt_edits: list[QLineEdit] = []
        row = QHBoxLayout()
        mon = QPushButton("Add monitor for it")
        mon.setToolTip("A monitor where the camera was when this entity was defined")
        mon.clicked.connect(
            lambda: self._sel_id() and commands.add_monitor_for_entity(self.doc, self._sel_id())
        )
        delete = QPushButton("Remove entity")
        delete.clicked.connect(
            lambda: self._sel_id() and commands.remove_entity(self.doc, self._sel_id())
        )
        row.addWidget(mon)
        row.addWidget(delete)
        form.addRow(row)

    def _build_round_page(self) -> None:
        form = self._page("round")
        self.r_scene = CommitTextEdit()
        self.r_scene.setPlaceholderText("What happens in the scene in this round")
        self.r_scene.setMaximumHeight(90)
        self.r_scene.committed.connect(self._round_scene_edited)
        form.addRow("Scene", self.r_scene)
        self.r_frames = QLabel()
        form.addRow("Frames", self.r_frames)
        self.r_prompts_box = QGroupBox("Entities in this round")
        self.r_prompts_form = QFormLayout(self.r_prompts_box)
        form.addRow(self.r_prompts_box)
        self.r_prompt_edits: list[QLineEdit] = []

    # ------------------------------------------------------------------ model -> fields
    def _sel_id(self) -> str | None:
        return self.doc.selection.id if self.doc.selection is not None else None

    def refresh(self, *_args) -> None:
        sel = self.doc.selection
        kind = sel.kind if sel is not None else "project"
        self.stack.setCurrentWidget(self.pages[kind])
        getattr(self, f"_show_{kind}")(sel)

    def _show_project(self, _sel) -> None:
        p = self.doc.project
        self.title.setText(f"Project — {p.name}")
        show_value(self.p_name, p.name, keep_focused=True)
        if p.scene is None:
            scene = "no reconstruction yet"
        elif p.scene.pending:
            scene = "reconstruction pending"
        else:
            scene = f"{p.scene.point_count:,} points" + (" (metric)" if p.scene.metric else "")
        cloud = self.doc.cloud
        if cloud is not None and p.scene is not None and p.scene.point_count == 0:
            scene = f"{len(cloud.xyz):,} points"
        self.p_summary.setText(scene)
        show_value(self.p_fps, p.camera_path.settings.fps, keep_focused=True)
        show_value(self.p_tension, p.camera_path.settings.tension, keep_focused=True)
        show_value(self.p_loop, p.camera_path.settings.loop, keep_focused=True)
        show_value(self.p_frames, p.generation.frames_per_round, keep_focused=True)
        g = p.generation
        self.p_size.setText(
            f"{g.width}×{g.height} at {g.fps} fps · {len(p.rounds)} rounds · "
            f"{p.total_frames} frames"
        )

    def _show_keyframe(self, sel: Selection) -> None:
        kfs = self.doc.project.camera_path.keyframes
        ids = [k.id for k in kfs]
        if sel.id not in ids:
            return
        i = ids.index(sel.id)
        kf = kfs[i]
        frames = self.doc.keyframe_frames()
        f = frames[i] if i < len(frames) else 0
        fps = self.doc.project.camera_path.settings.fps
        self.title.setText(f"Keyframe {i + 1} of {len(kfs)}")
        self.k_where.setText(
            f"frame {f}  ·  {f / fps:.3f} s  ·  round {self.doc.round_of_frame(f) + 1}"
        )
        self.k_pose.show(kf.position, kf.orientation, kf.fov)
        show_value(self.k_transition, kf.transition, keep_focused=True)
        show_value(self.k_easing, kf.easing, keep_focused=True)
        self.k_transition.setEnabled(i < len(kfs) - 1 or self.doc.project.camera_path.settings.loop)

    def set_thumbnail(self, pixmap) -> None:
        """The slot for the selected keyframe's view (rendered by the main window); None clears
        it."""
        if pixmap is None:
            self.k_thumb.clear()
            self.k_thumb.setText("thumbnail")
        else:
            self.k_thumb.setPixmap(pixmap)

    def _show_monitor(self, sel: Selection) -> None:
        try:
            m = self.doc.project.monitor(sel.id)
        except KeyError:
            return
        self.title.setText(f"Monitor — {m.name}")
        show_value(self.m_name, m.name, keep_focused=True)
        show_value(self.m_enabled, m.enabled, keep_focused=True)
        self.m_pose.show(m.pose.position, m.pose.orientation, m.fov)
        self.m_entities.blockSignals(True)
        self.m_entities.clear()
        for e in self.doc.project.entities:
            item = QListWidgetItem(e.name)
            item.setData(Qt.ItemDataRole.UserRole, e.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(
                Qt.CheckState.Checked if e.id in m.entity_ids else Qt.CheckState.Unchecked
            )
            self.m_entities.addItem(item)
        self.m_entities.blockSignals(False)
        rounds = self.doc.project.rounds
        round_text = rounds[0].scene_text if rounds else ""
        self.m_scene.setPlaceholderText(
            f"the round's scene text ({round_text[:60]}{'…' if len(round_text) > 60 else ''})"
            if round_text
            else "the round's scene text"
        )
        show_value(self.m_scene, m.scene_text or "", keep_focused=True)
        self.m_prompt.setText(self._monitor_prompt(m, 0))

    def _monitor_prompt(self, m, r: int) -> str:
        """The prompt monitor ``m`` generates round ``r`` with."""
        from worldstudio.core.generation.engine import compose_prompt, entity_prompt, scene_text

        p = self.doc.project
        text = m.scene_text if m.scene_text is not None else scene_text(p, r)
        prompts = [
            entity_prompt(p.entity(e), r) for e in m.entity_ids if e in {x.id for x in p.entities}
        ]
        return compose_prompt(text, prompts)

    def _show_entity(self, sel: Selection) -> None:
        try:
            e = self.doc.project.entity(sel.id)
        except KeyError:
            return
        self.title.setText(f"Entity — {e.name}")
        show_value(self.e_name, e.name, keep_focused=True)
        for s, v in zip(self.e_anchor, e.anchor or (0.0, 0.0, 0.0), strict=True):
            show_value(s, float(v), keep_focused=True)
        for s in self.e_anchor:
            s.setEnabled(e.anchor is not None)
        if e.defined_from is not None:
            x, y, z = e.defined_from.position
            self.e_defined.setText(
                f"camera at ({x:.3f}, {y:.3f}, {z:.3f})"
                + (f", fov {e.defined_fov:.1f}°" if e.defined_fov else "")
            )
        else:
            self.e_defined.setText("—")
        n = len(self.doc.project.rounds)
        self._sync_line_edits(
            self.e_prompts_form,
            self.e_prompt_edits,
            n,
            lambda r: f"Round {r + 1}",
            self._entity_prompt_edited,
        )
        for r, ed in enumerate(self.e_prompt_edits):
            show_value(ed, e.prompt(r), keep_focused=True)
            ed.setPlaceholderText(f"what {e.name} does in round {r + 1}")

    def _show_round(self, sel: Selection) -> None:
        r = int(sel.id)
        p = self.doc.project
        if r >= len(p.rounds):
            return
        F = p.generation.frames_per_round
        self.title.setText(f"Round {r + 1} of {len(p.rounds)}")
        show_value(self.r_scene, p.rounds[r].scene_text, keep_focused=True)
        self.r_frames.setText(f"{r * F} – {(r + 1) * F - 1}")
        self._sync_line_edits(
            self.r_prompts_form,
            self.r_prompt_edits,
            len(p.entities),
            lambda i: p.entities[i].name,
            self._round_prompt_edited,
        )
        for i, ed in enumerate(self.r_prompt_edits):
            show_value(ed, p.entities[i].prompt(r), keep_focused=True)
        for i in range(self.r_prompts_form.rowCount()):
            label = self.r_prompts_form.itemAt(i, QFormLayout.ItemRole.LabelRole)
            if label is not None and label.widget() is not None:
                label.widget().setText(p.entities[i].name)
        self.r_prompts_box.setVisible(bool(p.entities))

    @staticmethod
    def _sync_line_edits(form: QFormLayout, edits: list[QLineEdit], n: int, label, on_edit) -> None:
        while len(edits) > n:
            form.removeRow(len(edits) - 1)
            edits.pop()
        while len(edits) < n:
            i = len(edits)
            ed = guard(QLineEdit())
            ed.editingFinished.connect(lambda i=i: on_edit(i))
            form.addRow(label(i), ed)
            edits.append(ed)

    # ------------------------------------------------------------------ fields -> commands
    def _keyframe_edited(self, field: str) -> None:
        kf_id = self._sel_id()
        if kf_id is None or self.doc.selection.kind != "keyframe":
            return
        key = f"inspector:{kf_id}:{field}"
        if field == "position":
            commands.move_keyframe(self.doc, kf_id, position=self.k_pose.position(), merge_key=key)
        elif field == "orientation":
            commands.move_keyframe(
                self.doc, kf_id, orientation=self.k_pose.orientation(), merge_key=key
            )
        elif field == "fov":
            commands.move_keyframe(self.doc, kf_id, fov=self.k_pose.fov.value(), merge_key=key)
        elif field == "transition":
            commands.set_keyframe(self.doc, kf_id, key, transition=self.k_transition.value())
        elif field == "easing":
            commands.set_keyframe(self.doc, kf_id, key, easing=self.k_easing.currentText())

    def _goto_keyframe(self) -> None:
        ids = [k.id for k in self.doc.project.camera_path.keyframes]
        frames = self.doc.keyframe_frames()
        if self._sel_id() in ids and frames:
            self.doc.set_playhead(frames[ids.index(self._sel_id())])

    def _monitor_edited(self, field: str) -> None:
        mid = self._sel_id()
        if mid is None or self.doc.selection.kind != "monitor":
            return
        key = f"inspector:{mid}:{field}"
        if field == "position":
            commands.move_monitor(self.doc, mid, position=self.m_pose.position(), merge_key=key)
        elif field == "orientation":
            commands.move_monitor(
                self.doc, mid, orientation=self.m_pose.orientation(), merge_key=key
            )
        else:
            commands.move_monitor(self.doc, mid, fov=self.m_pose.fov.value(), merge_key=key)

    def _monitor_renamed(self) -> None:
        mid, name = self._sel_id(), self.m_name.text().strip()
        if mid and name and name != self.doc.project.monitor(mid).name:
            commands.rename_monitor(self.doc, mid, name)

    def _monitor_entities_edited(self, _item) -> None:
        mid = self._sel_id()
        if mid is None:
            return
        ids = []
        for i in range(self.m_entities.count()):
            it = self.m_entities.item(i)
            if it.checkState() == Qt.CheckState.Checked:
                ids.append(it.data(Qt.ItemDataRole.UserRole))
        commands.assign_entities(self.doc, mid, ids)

    def _monitor_scene_edited(self, text: str) -> None:
        sel = self.doc.selection
        if sel is None or sel.kind != "monitor":
            return
        try:
            m = self.doc.project.monitor(sel.id)
        except KeyError:
            return
        value = text if text.strip() else None
        if value != m.scene_text:
            commands.set_monitor_scene_text(self.doc, m.id, value)

    def _entity_renamed(self) -> None:
        eid, name = self._sel_id(), self.e_name.text().strip()
        if eid and name and name != self.doc.project.entity(eid).name:
            commands.rename_entity(self.doc, eid, name)

    def _entity_anchor_edited(self, _v) -> None:
        eid = self._sel_id()
        if eid is None:
            return
        commands.move_entity_anchor(
            self.doc,
            eid,
            tuple(s.value() for s in self.e_anchor),
            merge_key=f"inspector:{eid}:anchor",
        )

    def _entity_prompt_edited(self, r: int) -> None:
        eid = self._sel_id()
        if eid is None or self.doc.selection.kind != "entity":
            return
        text = self.e_prompt_edits[r].text()
        if text != self.doc.project.entity(eid).prompt(r):
            commands.set_entity_prompt(self.doc, eid, r, text)

    def _round_scene_edited(self, text: str) -> None:
        sel = self.doc.selection
        if sel is None or sel.kind != "round":
            return
        r = int(sel.id)
        if r < len(self.doc.project.rounds) and text != self.doc.project.rounds[r].scene_text:
            commands.set_scene_text(self.doc, r, text)

    def _round_prompt_edited(self, i: int) -> None:
        sel = self.doc.selection
        if sel is None or sel.kind != "round" or i >= len(self.doc.project.entities):
            return
        r = int(sel.id)
        e = self.doc.project.entities[i]
        text = self.r_prompt_edits[i].text()
        if text != e.prompt(r):
            commands.set_entity_prompt(self.doc, e.id, r, text)
