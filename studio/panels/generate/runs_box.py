"""The Generate panel's runs box: the project's runs (newest first) with their state, and what
can be done with the chosen one: resume it, branch a new run from one of its rounds, play its
videos, and play what each model call of a round was told (its control and mask videos). The box
only asks (:attr:`RunsBox.resume_requested`, :attr:`RunsBox.branch_requested`); the panel runs
the job. The chosen run is the one the timeline's Run row shows (:attr:`RunsBox.run_selected`)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from worldstudio.studio.document import ProjectDocument
from worldstudio.studio.widgets import hint, int_spin


class RunsBox(QGroupBox):
    """The runs of the open project."""

    play_requested = Signal(str)  # an mp4 to open in the player
    resume_requested = Signal(object)  # the run folder (Path)
    branch_requested = Signal(object, int)  # the run folder (Path), the first round to redo
    run_selected = Signal(object)  # the chosen run folder (Path), or None

    def __init__(self, doc: ProjectDocument, parent: QWidget | None = None):
        super().__init__("Runs", parent)
        self.doc = doc
        self.run_meta: dict[str, dict] = {}
        self._can_run = True
        self.runs_combo = QComboBox()
        self.runs_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.runs_combo.setMinimumContentsLength(14)
        self.runs_combo.currentIndexChanged.connect(lambda _i: self._run_selected())
        self.run_info = hint()
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip(
            "Continue the chosen run after its last complete round (its own "
            "settings and project snapshot)"
        )
        self.resume_button.clicked.connect(self._resume_clicked)
        self.branch_spin = int_spin(
            1, 1, 1, tip="the first round to regenerate; earlier rounds are copied"
        )
        self.branch_button = QPushButton("Branch from round")
        self.branch_button.setToolTip(
            "A new run: copy the rounds before this one from the chosen run, "
            "then regenerate with the project's current prompts and settings"
        )
        self.branch_button.clicked.connect(self._branch_clicked)
        self.play_final = QPushButton("Play")
        self.play_final.setToolTip("Open the run's final.mp4 in the player")
        self.play_final.clicked.connect(lambda: self._play_run("final.mp4"))
        self.play_combined = QPushButton("Play with monitors")
        self.play_combined.setToolTip("Open final_combined.mp4: the observer beside the monitors")
        self.play_combined.clicked.connect(lambda: self._play_run("final_combined.mp4"))
        self.cond_round = int_spin(1, 1, 1, tip="the round whose conditioning to play")
        self.cond_round.valueChanged.connect(lambda _v: self._fill_cameras())
        self.cond_camera = QComboBox()
        self.cond_camera.setToolTip("the call: the observer or a monitor")
        self.cond_camera.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.cond_camera.setMinimumContentsLength(6)
        self.cond_camera.currentIndexChanged.connect(lambda _i: self._update_buttons())
        self.play_control = QPushButton("Control")
        self.play_control.setToolTip(
            "Play the control video this call's model received (its context frames first)"
        )
        self.play_control.clicked.connect(lambda: self._play_conditioning("control"))
        self.play_mask = QPushButton("Mask")
        self.play_mask.setToolTip("Play its mask: white where the model generated, black kept")
        self.play_mask.clicked.connect(lambda: self._play_conditioning("mask"))
        refresh = QToolButton()
        refresh.setText("↻")
        refresh.setToolTip("Read the runs folder again")
        refresh.clicked.connect(lambda: self.refresh_runs())
        row1 = QHBoxLayout()
        row1.addWidget(self.runs_combo, 1)
        row1.addWidget(refresh)
        row2 = QHBoxLayout()
        row2.addWidget(self.resume_button)
        row2.addWidget(self.branch_button)
        row2.addWidget(self.branch_spin)
        row3 = QHBoxLayout()
        row3.addWidget(self.play_final)
        row3.addWidget(self.play_combined)
        cond = hint("What each call of a round was given (its control and mask videos):")
        row4 = QHBoxLayout()
        row4.addWidget(self.cond_round)
        row4.addWidget(self.cond_camera, 1)
        row4.addWidget(self.play_control)
        row4.addWidget(self.play_mask)
        v5 = QVBoxLayout(self)
        v5.addLayout(row1)
        v5.addWidget(self.run_info)
        v5.addLayout(row2)
        v5.addLayout(row3)
        v5.addWidget(cond)
        v5.addLayout(row4)
        doc.changed.connect(
            lambda aspect: aspect in ("rounds", "all") and self._update_branch_range()
        )

    def _runs(self):
        from worldstudio.core.project import ProjectFolder
        from worldstudio.core.project.runs import list_runs

        if self.doc.folder is None:
            return []
        return list_runs(ProjectFolder(self.doc.folder))

    def latest_run(self) -> Path | None:
        runs = self._runs()
        return runs[-1].path if runs else None

    def refresh_runs(self, select: Path | None = None) -> None:
        from worldstudio.core.project.runs import RunError, run_status

        keep = Path(select) if select is not None else self.selected_run()
        self.runs_combo.blockSignals(True)
        self.runs_combo.clear()
        self.run_meta: dict[str, dict] = {}
        for run in reversed(self._runs()):  # newest first
            try:
                meta = run.read_meta()
            except RunError:
                continue
            done = run.completed_rounds()
            total = int(meta.get("rounds_total") or 0)
            # "interrupted" for a run left "running" by a process that is gone
            status = run_status(meta)
            self.run_meta[str(run.path)] = dict(meta, rounds_done=done, shown_status=status)
            self.runs_combo.addItem(
                f"{run.id} · {meta.get('backend', '?')} · {done}/{total} · {status}", str(run.path)
            )
        if self.runs_combo.count() == 0:
            self.runs_combo.addItem("(no runs yet)", None)
        i = self.runs_combo.findData(str(keep)) if keep is not None else -1
        self.runs_combo.setCurrentIndex(max(i, 0))
        self.runs_combo.blockSignals(False)
        self._run_selected()

    def selected_run(self) -> Path | None:
        data = self.runs_combo.currentData() if self.runs_combo.count() else None
        return Path(data) if data else None

    def select_run(self, run: str | Path) -> None:
        i = self.runs_combo.findData(str(Path(run)))
        if i < 0:
            raise KeyError(f"no run {run}")
        self.runs_combo.setCurrentIndex(i)

    def _selected_meta(self) -> dict | None:
        run = self.selected_run()
        return self.run_meta.get(str(run)) if run is not None else None

    def _run_selected(self) -> None:
        meta = self._selected_meta()
        if meta is None:
            self.run_info.setText(
                "Generate to make the first run."
                if self.doc.folder
                else "Save the project to generate."
            )
        else:
            s = meta.get("settings", {})
            parent = meta.get("parent")
            text = (
                f"{meta['rounds_done']} of {meta.get('rounds_total')} rounds · {s.get('width')}×"
                f"{s.get('height')} · F={s.get('frames_per_round')} · seed {s.get('seed')}"
            )
            if parent:
                text += f" · branch of {parent.get('run')} from round {int(parent.get('from_round', 0)) + 1}"
            if meta.get("error") and meta.get("status") != "complete":
                text += f"\n{meta.get('status')}: {meta['error']}"
            self.run_info.setText(text)
            done = max(1, int(meta["rounds_done"]))
            self.cond_round.blockSignals(True)
            self.cond_round.setRange(1, done)
            self.cond_round.setValue(done)
            self.cond_round.blockSignals(False)
        self._fill_cameras()
        self._update_branch_range(reset=True)
        self._update_buttons()
        self.run_selected.emit(self.selected_run())

    def _update_branch_range(self, reset: bool = False) -> None:
        """Branch from round k (1-based) copies the run's rounds before k, so k goes up to the
        first round the run has not finished, and no further than the project's last round (a
        branch regenerates at least one). ``reset``: show the highest such round."""
        meta = self._selected_meta()
        if meta is None:
            return
        top = max(1, min(int(meta["rounds_done"]) + 1, len(self.doc.project.rounds)))
        self.branch_spin.setRange(1, top)
        if reset:
            self.branch_spin.setValue(top)

    def resumable(self) -> bool:
        """The chosen run has rounds left and no live process is writing it."""
        meta = self._selected_meta()
        return (
            bool(meta)
            and meta["rounds_done"] < int(meta.get("rounds_total") or 0)
            and meta.get("shown_status") != "running"
        )

    def _play_run(self, name: str) -> None:
        run = self.selected_run()
        if run is not None and (run / name).is_file():
            self.play_requested.emit(str(run / name))

    def _fill_cameras(self) -> None:
        """The calls of the chosen round that left conditioning videos."""
        from worldstudio.core.project.runs import RunFolder

        run = self.selected_run()
        keep = self.cond_camera.currentData()
        cameras = RunFolder(run).conditioning_cameras(self.cond_round.value() - 1) if run else []
        self.cond_camera.blockSignals(True)
        self.cond_camera.clear()
        for camera in cameras:
            label = "observer" if camera == "observer" else camera.removeprefix("monitor-")
            self.cond_camera.addItem(label, camera)
        i = self.cond_camera.findData(keep)
        self.cond_camera.setCurrentIndex(max(i, 0))
        self.cond_camera.blockSignals(False)
        self._update_buttons()

    def conditioning_video(self, kind: str) -> Path | None:
        """The chosen round's and call's control or mask video, when it exists."""
        from worldstudio.core.project.runs import RunFolder

        run, camera = self.selected_run(), self.cond_camera.currentData()
        if run is None or not camera:
            return None
        path = RunFolder(run).conditioning_mp4(self.cond_round.value() - 1, camera, kind)
        return path if path.is_file() else None

    def _play_conditioning(self, kind: str) -> None:
        path = self.conditioning_video(kind)
        if path is not None:
            self.play_requested.emit(str(path))

    def set_can_run(self, can: bool) -> None:
        """Whether a run may start now (Resume and Branch)."""
        self._can_run = can
        self._update_buttons()

    def _resume_clicked(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.resume_requested.emit(run)

    def _branch_clicked(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.branch_requested.emit(run, self.branch_spin.value() - 1)

    def _update_buttons(self) -> None:
        can_run = self._can_run
        has_folder = self.doc.folder is not None
        run = self.selected_run()
        meta = self._selected_meta()
        self.resume_button.setEnabled(can_run and has_folder and self.resumable())
        self.branch_button.setEnabled(can_run and meta is not None)
        self.branch_spin.setEnabled(meta is not None)
        self.play_final.setEnabled(run is not None and (run / "final.mp4").is_file())
        self.play_combined.setEnabled(run is not None and (run / "final_combined.mp4").is_file())
        self.cond_round.setEnabled(meta is not None)
        self.cond_camera.setEnabled(self.cond_camera.count() > 0)
        self.play_control.setEnabled(self.conditioning_video("control") is not None)
        self.play_mask.setEnabled(self.conditioning_video("mask") is not None)
