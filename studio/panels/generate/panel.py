"""The Generate panel: the world engine's settings, the VRAM estimate, the live preview, runs.

The panel is put together from its parts: the live preview screen, a :class:`JobHeader`
(progress, time left, Generate / Cancel), the settings form (:mod:`.settings_form`), the LoRA
table (:mod:`.lora_table`) and the runs box (:mod:`.runs_box`). The engine reads the *saved*
project, so Generate and Branch save the open project first, without asking (see
:meth:`GeneratePanel._ensure_saved`).

A run is a job on the window's :class:`~studio.worker.JobRunner`; the panel follows the handle
of its own job. Its preview reports (the latest thumbnail strip of each denoising step, or a
whole frame for the model-free backends) are shown large at the top, with the round / camera /
step text of its progress reports. The job's ``run_started`` event names the run folder and each
``round_finished`` event tells the timeline (:attr:`GeneratePanel.run_changed`); when the run
ends (finished, cancelled or failed) the runs box shows it and, when finished, its video is
played (:attr:`GeneratePanel.play_requested`).

Nothing here imports torch: the engine is imported when a run starts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QSizePolicy, QSplitter, QVBoxLayout, QWidget

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.generation.engine import RunOptions, project_model_for
from worldstudio.studio.document import ProjectDocument
from worldstudio.studio.jobs_queue import QueueDriver
from worldstudio.studio.panels.generate.lora_table import LoraTable
from worldstudio.studio.panels.generate.runs_box import RunsBox
from worldstudio.studio.panels.generate.settings_form import GenerationSettingsForm
from worldstudio.studio.panels.job_header import JobHeader
from worldstudio.studio.util import pixmap_fit
from worldstudio.studio.widgets import scroll_column
from worldstudio.studio.worker import GPU, JobHandle, JobRunner

SCREEN_TEXT = "The live preview shows here while a run generates."


class PreviewScreen(QLabel):
    """The live preview: the latest image, scaled to the label (kept on resize)."""

    def __init__(self, text: str = ""):
        super().__init__(text)
        self.image: np.ndarray | None = None
        self.setObjectName("screen")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(160, 90)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.setWordWrap(True)

    def show_image(self, image: np.ndarray) -> None:
        self.image = np.ascontiguousarray(image)
        self._redraw()

    def clear_image(self, text: str) -> None:
        self.image = None
        self.clear()
        self.setText(text)

    def _redraw(self) -> None:
        if self.image is not None:
            self.setPixmap(pixmap_fit(self.image, self.width() - 2, self.height() - 2))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._redraw()


class GeneratePanel(QWidget):
    """The Generate dock's widget."""

    play_requested = Signal(str)  # an mp4 to open in the player
    run_changed = Signal(object)  # the run folder (Path) whose rounds changed, or None
    message = Signal(str, bool)  # (text, is_error) for the status bar

    def __init__(
        self,
        doc: ProjectDocument,
        runner: JobRunner,
        save: Callable[[], bool] | None = None,
        parent: QWidget | None = None,
        queue: QueueDriver | None = None,
    ):
        super().__init__(parent)
        self.doc = doc
        self.runner = runner
        self.queue = queue
        self._save = save
        self.job: JobHandle | None = None  # this panel's latest run
        self.queued: str | None = None  # the queue entry of the Generate it waits for
        self.preflight_dialog = None  # the dialog of the last run the checks refused
        # what the pre-flight dialog's fix buttons do (the window sets them)
        self.on_models: Callable[[tuple[str, ...]], None] | None = None
        self.on_camera: Callable[[], None] | None = None
        self.last_result = None  # the RunResult of the last finished run
        self.last_error = ""
        self.current_run: Path | None = None  # the run the job writes (from its run_started)

        self.screen = PreviewScreen(SCREEN_TEXT)
        self.header = JobHeader(
            "Generate",
            "Save the project and generate its video round by round",
            "Stop after the current step; finished rounds stay on disk",
        )
        self.header.start_button.setObjectName("generateButton")
        self.header.start_button.clicked.connect(lambda: self.generate())
        self.form = GenerationSettingsForm(doc)
        self.form.message.connect(self.message)
        self.loras = LoraTable(doc)
        self.runs = RunsBox(doc)
        self.runs.play_requested.connect(self.play_requested)
        self.runs.resume_requested.connect(lambda run: self.resume(run))
        self.runs.branch_requested.connect(lambda run, k: self.branch(k, run))
        self.runs.run_selected.connect(lambda run: self.running or self.run_changed.emit(run))

        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(6, 6, 6, 0)
        tl.addWidget(self.screen, 1)
        tl.addWidget(self.header)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(scroll_column(self.form, self.loras, self.runs))
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        split.setSizes([400, 500])  # the preview gets a good share of the dock
        self.splitter = split
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

        doc.changed.connect(self._on_changed)
        runner.jobs_changed.connect(self._update_buttons)
        if queue is not None:
            queue.entry_started.connect(self._on_entry_started)
            queue.changed.connect(self._on_queue_changed)
        self.refresh()

    @property
    def running(self) -> bool:
        """Whether this panel's run is under way."""
        return self.job is not None and not self.job.ended

    def _on_changed(self, aspect: str) -> None:
        if aspect == "all":
            self.refresh()

    def refresh(self) -> None:
        """The runs and the timeline's run from the project folder (a project was opened)."""
        self.runs.refresh_runs()
        self.run_changed.emit(self.runs.selected_run())
        self._update_buttons()

    def forget_project(self) -> None:
        """Another project was opened: the last run's preview and outcome go (unless a run is
        still under way: it keeps showing until it ends)."""
        if self.running:
            return
        self.screen.clear_image(SCREEN_TEXT)
        self.screen.setToolTip("")
        self.header.reset()
        self.last_result = None
        self.last_error = ""
        self.current_run = None

    def refresh_loras(self) -> None:
        self.loras.refresh()

    def _update_buttons(self) -> None:
        can_run = self.runner.can_start(GPU) and not self.running
        # with a queue, Generate queues behind whatever holds the GPU
        queued = self.queue is not None and self.queued is not None
        self.header.set_can_start(
            not queued and (self.queue is not None or self.runner.can_start(GPU))
        )
        self.runs.set_can_run(can_run)

    # ================================================================== running
    def _ensure_saved(self) -> bool:
        """The engine reads the project from its folder. A run is made from what the studio
        shows, so unsaved edits (settings, prompts, the path) are saved first without a
        question: a "save your changes?" box before every run only gets in the way, Undo still
        goes back, and the run folder keeps its own snapshot of the project. A project that has
        no folder yet asks for one (Save as)."""
        if self.doc.folder is not None and not self.doc.is_modified:
            return True
        if self._save is not None:
            saved = bool(self._save())
        else:
            try:
                self.doc.save()
                saved = True
            except WorldStudioError as exc:
                self.message.emit(str(exc), True)
                return False
        if saved:
            self.message.emit(f"Saved {self.doc.folder} for this run", False)
        return saved

    def _options(self, **more) -> RunOptions:
        """The run options this panel sets (the rest come from the project)."""
        return RunOptions(**self.form.run_options(), loras=self.loras.selected() or None, **more)

    def _job(self, folder: Path, options: RunOptions):
        """The job of a run of ``options``: on the form's GPU count (several: one worker
        process per GPU, core.generation.parallel)."""
        gpus = self.form.gpu_count()
        if gpus > 1:
            from worldstudio.core.generation.parallel import parallel_generate_job

            return parallel_generate_job(folder, options, gpus)
        from worldstudio.core.generation.engine import generate_job

        return generate_job(folder, options)

    def generate(self, strict: bool = True) -> bool:
        """Save (without asking) and start a new run with the project's settings. With a queue
        the run is a queue entry (``generate PROJECT --profile ...``): it starts at once when the
        GPU is free, else waits its turn in the Jobs panel. ``strict``: the checks before the run
        stop it on warnings too (the pre-flight dialog's Run anyway passes False)."""
        if self.queue is None:
            options = self._options(stop_on_warnings=strict)
            return self._launch(lambda folder: self._job(folder, options), "Generate")
        if self.running or self.queued is not None:
            self.message.emit("A run of this panel is already queued or running", True)
            return False
        if not self._ensure_saved():
            return False
        if self.doc.folder is None:
            self.message.emit("Save the project first: runs go into its folder", True)
            return False
        title = "Generate"  # the Jobs panel's tooltip names the project
        try:
            if self.form.gpu_count() > 1:  # what cannot run split is said now, not at its turn
                self._job(self.doc.folder, self._options(stop_on_warnings=strict))
            entry = self.queue.submit(
                "generate",
                self.doc.folder,
                self._cli_args(strict),
                title,
                on_added=lambda e: setattr(self, "queued", e.id),
            )
        except WorldStudioError as exc:
            self.queued = None
            self.message.emit(str(exc), True)
            return False
        if self.queued == entry.id:  # waits for the GPU: the panel follows it once it starts
            ahead = sum(
                e.state in ("queued", "interrupted", "running") and e.lane == entry.lane
                for e in self.queue.entries
                if e.id != entry.id
            )
            said = (
                f"queued behind {ahead} job(s) (see the Jobs panel)"
                if ahead
                else "queued: it starts when the GPU is free"
            )
            self.header.status.setText(said)
            self.message.emit(f"{title}: {said}", False)
            self._update_buttons()
        return True

    def _cli_args(self, strict: bool) -> list[str]:
        """The ``generate`` options of :meth:`_options` as a command line (a queue entry)."""
        o = self.form.run_options()
        args = ["--profile", str(o["profile"])]
        if not o["monitors"]:
            args.append("--no-monitors")
        for path, strength in self.loras.selected():
            args.append(f"--lora={path}={float(strength)!r}")
        if strict:
            args.append("--strict")
        gpus = self.form.gpu_count()
        if gpus > 1:
            args += ["--gpus", str(gpus)]
        return args

    def _on_queue_changed(self) -> None:
        """The queued run was cancelled or removed before it started: Generate may queue
        another."""
        if self.queued is None:
            return
        entry = self.queue.entry(self.queued)
        if entry is None or entry.state not in ("queued", "interrupted", "running"):
            self.queued = None
            self.header.reset("the queued run was cancelled" if entry else "")
            self._update_buttons()

    def _on_entry_started(self, entry_id: str, handle: JobHandle) -> None:
        """The queue started a job: this panel's Generate, or another generation of the open
        project (queued from a terminal, or an interrupted run continuing), which the panel shows
        when it has nothing of its own running."""
        if entry_id == self.queued:
            self.queued = None
            self._follow(handle, handle.description)
            return
        entry = self.queue.entry(entry_id)
        if (
            entry is not None
            and entry.command == "generate"
            and not self.running
            and self.queued is None
            and self.doc.folder is not None
            and Path(entry.project).resolve() == Path(self.doc.folder).resolve()
        ):
            self._follow(handle, handle.description)

    def resume(self, run: str | Path | None = None) -> bool:
        """Continue ``run`` (default: the chosen one) after its last complete round."""
        run = Path(run) if run is not None else self.runs.selected_run()
        if run is None:
            self.message.emit("Choose a run to resume", True)
            return False
        # the run's own settings (profile, LoRAs, monitors) are kept: run.json records them
        return self._launch(
            lambda folder: self._job(folder, RunOptions(resume=str(run))),
            f"Resume {run.name}",
            needs_save=False,
        )

    def branch(self, from_round: int | None = None, run: str | Path | None = None) -> bool:
        """A new run copying the rounds before ``from_round`` (0-based; default: the runs box's
        round) from ``run`` (default: the chosen one), regenerating the rest with the project's
        current prompts and settings (size and frames per round stay the parent's)."""
        run = Path(run) if run is not None else self.runs.selected_run()
        if run is None:
            self.message.emit("Choose a run to branch from", True)
            return False
        k = int(from_round) if from_round is not None else self.runs.branch_spin.value() - 1
        g = self.doc.project.generation
        # the draft preset sets the steps, guidance and flow shift its LoRA is made for
        sampling = (
            {}
            if g.quality == "draft"
            else {"steps": g.steps, "guidance": g.guidance, "flow_shift": g.flow_shift}
        )
        options = self._options(
            backend=g.backend,
            seed=g.seed,
            model=project_model_for(g.backend, g),
            observer_strength=g.observer_strength,
            monitor_strength=g.monitor_strength,
            negative_prompt=g.negative_prompt,
            context_frames=g.context_frames,
            prompt_entities=g.prompt_entities,
            attention=g.attention,
            compile=g.compile,
            quality=g.quality,
            cache=g.cache,
            precision=g.precision,
            vae_tiling=g.vae_tiling,
            colour_match=g.colour_match,
            resume=str(run),
            from_round=k,
            **sampling,
        )
        return self._launch(
            lambda folder: self._job(folder, options),
            f"Branch {run.name} from round {k + 1}",
        )

    def _launch(self, make_job, description: str, needs_save: bool = True) -> bool:
        if not self.runner.can_start(GPU):
            self.message.emit("Another job is running; wait for it or cancel it", True)
            return False
        if needs_save and not self._ensure_saved():
            return False
        if self.doc.folder is None:
            self.message.emit("Save the project first: runs go into its folder", True)
            return False
        try:
            job = make_job(self.doc.folder)
        except WorldStudioError as exc:
            self.message.emit(str(exc), True)
            return False
        handle = self.runner.start(job, description, GPU)
        if handle is None:
            return False
        self._follow(handle, description)
        return True

    def _follow(self, handle: JobHandle, description: str) -> None:
        """Show ``handle``'s run: its preview, progress, events and outcome."""
        self.job = handle
        self.current_run = None  # named by the job's run_started event
        self.last_error = ""
        handle.progress.connect(self._on_progress)
        handle.preview.connect(self._on_preview)
        handle.event.connect(self._on_event)
        handle.finished.connect(self._on_finished)
        handle.failed.connect(self._on_failed)
        handle.cancelled.connect(self._on_cancelled)
        self.header.follow(handle)
        self.screen.clear_image("Starting…")
        self.header.status.setText(description)
        self._update_buttons()

    # ------------------------------------------------------------------ the job's reports
    def _on_progress(self, _done: int, _total: int, message: str) -> None:
        if self.job is not None and self.job.cancel_requested:
            return  # the header says it is cancelling until the job ends
        self.header.status.setText(message)

    def _on_preview(self, image, message: str) -> None:
        img = np.asarray(image)
        if img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8:
            self.screen.show_image(img)
            self.screen.setToolTip(message)

    def _of_open_project(self, run: Path | None) -> bool:
        """Whether ``run`` is a run of the open project (another may have been opened since)."""
        from worldstudio.core.project import ProjectFolder

        return (
            run is not None
            and self.doc.folder is not None
            and Path(run).parent.resolve() == ProjectFolder(self.doc.folder).runs_dir.resolve()
        )

    def _on_event(self, name: str, data: dict) -> None:
        if name == "run_started":
            self.current_run = Path(data["run_dir"])
            if self._of_open_project(self.current_run):
                self.run_changed.emit(self.current_run)
        elif name == "round_finished" and self._of_open_project(Path(data["run_dir"])):
            self.run_changed.emit(Path(data["run_dir"]))

    def _ended(self) -> None:
        run = self.current_run if self._of_open_project(self.current_run) else None
        self.runs.refresh_runs(select=run)  # the runs box shows it: the Run row follows
        self._update_buttons()

    def _on_finished(self, result) -> None:
        self.last_result = result
        self.current_run = Path(result.run_dir)
        self.header.show_outcome(
            f"run {result.run_id}: {result.rounds_done}/{result.rounds_total} rounds in "
            f"{result.seconds:.1f} s",
            complete=True,
        )
        self._ended()
        video = result.final_mp4
        if video is not None and Path(video).is_file():
            self.play_requested.emit(str(video))

    def _on_failed(self, message: str) -> None:
        from worldstudio.core.generation.preflight import PreflightError

        self.last_error = message
        refused = self.job.exception if self.job is not None else None
        if isinstance(refused, PreflightError):
            report = refused.preflight
            self.header.show_outcome(
                f"not started ({report.summary()}): see the list of problems", complete=False
            )
            self._ended()
            self.show_preflight(report)
            return
        self.header.show_outcome(f"failed: {message}", complete=False)
        self._ended()

    def show_preflight(self, report):
        """The pre-flight dialog for ``report`` (shown non-modally, returned)."""
        from worldstudio.studio.dialogs.preflight import PreflightDialog

        def use_profile(name: str) -> None:
            self.form.set_profile(name)
            self.message.emit(f"Memory profile: {name}", False)

        self.preflight_dialog = PreflightDialog(
            report,
            self,
            on_models=self.on_models,
            on_profile=use_profile,
            on_camera=self.on_camera,
            on_run_anyway=lambda: self.generate(strict=False),
        )
        self.preflight_dialog.open()
        return self.preflight_dialog

    def _on_cancelled(self) -> None:
        self.header.show_outcome(
            "cancelled: finished rounds are kept (Resume continues the run)", complete=False
        )
        self._ended()
