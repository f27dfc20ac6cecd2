"""File ▸ Import and File ▸ Export: project bundles, LiveWorld samples, nerfstudio camera paths,
PLY clouds, the baked path as JSON/CSV and run videos, all through :mod:`worldstudio.core.interop`.

The exporters read the project from its folder, so an export first makes sure the folder is up
to date: with unsaved changes the user chooses to save, to export the last saved version, or to
cancel. Longer work runs in the studio's worker (progress and Cancel in the status bar). Imports
that make a new project (bundle, LiveWorld) build it in a new folder and open it; a nerfstudio
camera path goes into the open project as one undoable edit. Warnings the importers and
exporters return are logged and shown in a message box.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QMenu,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.project import ProjectFolder
from worldstudio.studio import settings as app_settings
from worldstudio.studio.field_guard import guard_fields
from worldstudio.studio.jobs_queue import LIGHT
from worldstudio.studio.shell import Shell

LAYOUT_TEXT = {
    "observer": "Observer only",
    "combined": "Observer with the monitors beside it",
    "conditioning": "Observer with the conditioning renders beside it",
}


def list_runs(folder: Path | None) -> list[tuple[str, bool, bool]]:
    """The project's runs, newest first: (run id, has video, has round clouds)."""
    from worldstudio.core.project.runs import list_runs as project_runs

    if folder is None:
        return []
    runs = [
        (r.id, r.has_video(), r.has_clouds()) for r in reversed(project_runs(ProjectFolder(folder)))
    ]
    return [(rid, video, clouds) for rid, video, clouds in runs if video or clouds]


class RunChoiceDialog(QDialog):
    """Which run (and, for videos, which layout) to export."""

    def __init__(
        self,
        runs: list[str],
        with_layout: bool,
        parent: QWidget | None = None,
        has_monitors: bool = True,
    ):
        super().__init__(parent)
        self.setWindowTitle("Export a run")
        self.run_combo = QComboBox()
        for r in runs:
            self.run_combo.addItem(r, r)
        self.layout_combo = QComboBox()
        for key, text in LAYOUT_TEXT.items():
            self.layout_combo.addItem(text, key)
            if key == "combined" and not has_monitors:
                self.layout_combo.model().item(self.layout_combo.count() - 1).setEnabled(False)
        form = QFormLayout()
        form.addRow("Run", self.run_combo)
        if with_layout:
            form.addRow("Layout", self.layout_combo)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)
        guard_fields(self)

    def choice(self) -> tuple[str, str]:
        return str(self.run_combo.currentData()), str(self.layout_combo.currentData())


class InteropActions(QObject):
    """The Import and Export menus; ``shell`` is the window (:class:`~studio.shell.Shell`)."""

    def __init__(self, shell: Shell):
        super().__init__(shell.widget())
        self.shell = shell
        self.last_warnings: list[str] = []
        self.warning_box: QMessageBox | None = None
        # Questions asked; tests replace them with plain functions.
        self.ask_save_before_export: Callable[[str], str] = self._ask_save_before_export
        self.ask_run: Callable[[list[str], bool], tuple[str, str] | None] = self._ask_run

        a = shell.add_action
        self.act_import_bundle = a(
            "Project bundle (.zip)…",
            self.import_bundle,
            tip="Unpack a project bundle into a new project folder and open it",
        )
        self.act_import_liveworld = a(
            "LiveWorld sample (.yaml)…",
            self.import_liveworld,
            tip="Make a new project from a LiveWorld inference sample",
        )
        self.act_import_nerfstudio = a(
            "nerfstudio camera path (.json)…",
            self.import_nerfstudio,
            tip="Replace this project's camera path with a nerfstudio one (undoable)",
        )
        self.act_export_ply = a(
            "Scene point cloud (PLY)…",
            lambda: self.export_scene_ply(False),
            tip="Write the scene's point cloud as a PLY file",
        )
        self.act_export_ply_path = a(
            "Scene with camera path && monitors (PLY)…",
            lambda: self.export_scene_ply(True),
            tip="The scene cloud with the path and camera frustums as coloured points",
        )
        self.act_export_run_ply = a(
            "Run point clouds (PLY)…",
            self.export_run_ply,
            tip="Each round's cloud of a generation run as PLY files",
        )
        self.act_export_bundle = a(
            "Project bundle (.zip)…",
            self.export_bundle,
            tip="The whole project folder as one zip file",
        )
        self.act_export_liveworld = a(
            "LiveWorld sample…",
            self.export_liveworld,
            tip="A LiveWorld inference sample (YAML, geometry.npz, image) in a folder",
        )
        self.act_export_nerfstudio = a(
            "nerfstudio camera path (.json)…",
            self.export_nerfstudio,
            tip="The camera path as nerfstudio's camera_path.json",
        )
        self.act_export_path_json = a(
            "Baked path as JSON…",
            lambda: self.export_path("json"),
            tip="One pose and intrinsics per video frame, as JSON",
        )
        self.act_export_path_csv = a(
            "Baked path as CSV…",
            lambda: self.export_path("csv"),
            tip="One pose and intrinsics per video frame, as CSV",
        )
        self.act_export_mp4 = a(
            "Run video (mp4)…",
            self.export_run_mp4,
            tip="A generation run as mp4: observer only, with monitors, or with renders",
        )

    # ------------------------------------------------------------------ menus
    def fill_import_menu(self, menu: QMenu) -> None:
        for act in (
            self.act_import_bundle,
            self.act_import_liveworld,
            None,
            self.act_import_nerfstudio,
        ):
            menu.addSeparator() if act is None else menu.addAction(act)

    def fill_export_menu(self, menu: QMenu) -> None:
        for act in (
            self.act_export_ply,
            self.act_export_ply_path,
            self.act_export_run_ply,
            None,
            self.act_export_bundle,
            self.act_export_liveworld,
            self.act_export_nerfstudio,
            self.act_export_path_json,
            self.act_export_path_csv,
            None,
            self.act_export_mp4,
        ):
            menu.addSeparator() if act is None else menu.addAction(act)
        menu.aboutToShow.connect(self.update_actions)

    def update_actions(self) -> None:
        """Enable what the open project can export (runs are looked up on disk)."""
        doc = self.shell.doc
        p = doc.project
        runs = list_runs(doc.folder)
        has_path = bool(p.camera_path.keyframes)
        has_cloud = p.scene is not None and not p.scene.pending
        self.act_export_ply.setEnabled(has_cloud)
        self.act_export_ply_path.setEnabled(has_cloud)
        self.act_export_run_ply.setEnabled(any(c for _r, _v, c in runs))
        self.act_export_liveworld.setEnabled(p.source is not None)
        for act in (
            self.act_export_nerfstudio,
            self.act_export_path_json,
            self.act_export_path_csv,
        ):
            act.setEnabled(has_path)
        self.act_export_mp4.setEnabled(any(v for _r, v, _c in runs))

    # ------------------------------------------------------------------ helpers
    def _start_dir(self, kind: str = "export") -> str:
        """Where a file dialog opens: the folder last used for an import or an export (of any
        project), else the folder the open project is in, else the projects folder."""
        last = app_settings.last_dir(kind)
        if last is not None:
            return str(last)
        folder = self.shell.doc.folder
        return str(folder.parent) if folder is not None else str(app_settings.projects_dir())

    def _default_name(self, suffix: str) -> str:
        folder = self.shell.doc.folder
        stem = folder.stem if folder is not None else (self.shell.doc.project.name or "project")
        return str(Path(self._start_dir()) / f"{stem}{suffix}")

    def _open_path(self, title: str, filt: str) -> Path | None:
        """A file to import (the dialog opens where the last import was)."""
        path, _ = QFileDialog.getOpenFileName(
            self.shell.widget(), title, self._start_dir("import"), filt
        )
        if not path:
            return None
        app_settings.remember_dir("import", path)
        return Path(path)

    def error(self, title: str, message: str) -> None:
        self.shell.show_message(message, error=True)
        if self.shell.widget().isVisible():
            box = QMessageBox(
                QMessageBox.Icon.Warning,
                title,
                message,
                QMessageBox.StandardButton.Ok,
                self.shell.widget(),
            )
            box.open()
            self.warning_box = box

    def show_warnings(self, title: str, warnings: list[str]) -> None:
        self.last_warnings = list(warnings)
        for text in warnings:
            self.shell.log(f"warning: {text}")
        if not warnings or not self.shell.widget().isVisible():
            return
        box = QMessageBox(
            QMessageBox.Icon.Information,
            title,
            f"{title} finished with {len(warnings)} note(s):",
            QMessageBox.StandardButton.Ok,
            self.shell.widget(),
        )
        box.setInformativeText("\n\n".join(f"• {t}" for t in warnings))
        box.open()
        self.warning_box = box

    def _done(self, title: str, text: str, warnings: list[str] = ()) -> None:
        note = (
            f" ({len(warnings)} warning{'s' if len(warnings) != 1 else ''}, see the log)"
            if warnings
            else ""
        )
        self.shell.show_message(text + note)
        self.shell.log(text)
        self.show_warnings(title, list(warnings))

    def _run(self, job, title: str, on_done) -> bool:
        # exports are light: they may run while a generation holds the GPU
        handle = self.shell.run_job(
            job, title, on_done, on_failed=lambda msg: self.error(title, msg), lane=LIGHT
        )
        return handle is not None

    def saved_folder(self, what: str) -> Path | None:
        """The project folder, up to date on disk, for an export; None when the user cancels."""
        doc = self.shell.doc
        if doc.folder is None or doc.is_modified:
            choice = self.ask_save_before_export(what)
            if choice == "save":
                if not self.shell.save():
                    return None
            elif choice != "saved" or doc.folder is None:
                return None
        return doc.folder

    def _ask_save_before_export(self, what: str) -> str:
        """'save', 'saved' (export the last saved version) or 'cancel'."""
        box = QMessageBox(self.shell.widget())
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle(f"Export {what}")
        if self.shell.doc.folder is None:
            box.setText("The project has not been saved yet. Save it first?")
            box.setInformativeText("Exports read the project from its folder.")
            save = box.addButton("Save…", QMessageBox.ButtonRole.AcceptRole)
            saved = None
        else:
            box.setText("The project has unsaved changes. Save them before exporting?")
            box.setInformativeText(
                "Exports read the project from its folder; without saving, the "
                "last saved version is exported."
            )
            save = box.addButton("Save and export", QMessageBox.ButtonRole.AcceptRole)
            saved = box.addButton(
                "Export the saved version", QMessageBox.ButtonRole.DestructiveRole
            )
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(save)
        box.exec()
        clicked = box.clickedButton()
        return (
            "save"
            if clicked is save
            else "saved"
            if saved is not None and clicked is saved
            else "cancel"
        )

    def _ask_run(self, runs: list[str], with_layout: bool) -> tuple[str, str] | None:
        dlg = RunChoiceDialog(
            runs,
            with_layout,
            self.shell.widget(),
            has_monitors=bool(self.shell.doc.project.monitors),
        )
        if dlg.exec() != QDialog.DialogCode.Accepted:
            return None
        return dlg.choice()

    def _save_path(
        self, title: str, default: str, filt: str, suffix: str, kind: str = "export"
    ) -> Path | None:
        path, _ = QFileDialog.getSaveFileName(self.shell.widget(), title, default, filt)
        if not path:
            return None
        if suffix and not path.lower().endswith(suffix):
            path += suffix
        app_settings.remember_dir(kind, path)
        return Path(path)

    def _new_project_folder(self, title: str, source: Path) -> Path | None:
        """The folder of a project made by an import: proposed in the projects folder, named
        after ``source``."""
        from worldstudio.core.interop.bundle import check_target_free

        default = app_settings.free_folder(app_settings.projects_dir() / f"{source.stem}.wsproj")
        folder, _ = QFileDialog.getSaveFileName(
            self.shell.widget(), title, str(default), "Project folder (*.wsproj)"
        )
        if not folder:
            return None
        if not folder.endswith(".wsproj"):
            folder += ".wsproj"
        try:
            check_target_free(folder)
        except WorldStudioError as exc:
            self.error(title, f"{exc}: choose a new folder")
            return None
        return Path(folder)

    def _open_new(self, folder: Path, title: str, warnings: list[str], extra: str = "") -> None:
        if self.shell.open_project(folder, offer_recovery=False):
            self._done(title, f"{title}: opened {folder}{extra}", warnings)

    # ------------------------------------------------------------------ imports
    def import_bundle(self) -> bool:
        from worldstudio.core.interop.bundle import check_bundle, import_bundle_job

        title = "Import bundle"
        if not self.shell.ensure_saved():
            return False
        zip_path = self._open_path(
            "Import a project bundle", "Project bundle (*.zip);;All files (*)"
        )
        if zip_path is None:
            return False
        try:  # an unsafe or broken bundle is refused before a destination is asked for
            check_bundle(zip_path)
        except WorldStudioError as exc:
            self.error(title, str(exc))
            return False
        out = self._new_project_folder("Unpack the bundle into (a new project folder)", zip_path)
        if out is None:
            return False
        return self._run(
            import_bundle_job(zip_path, out),
            title,
            lambda result: self._open_new(out, title, result[1]),
        )

    def import_liveworld(self) -> bool:
        from worldstudio.core.interop.liveworld import import_liveworld_job

        title = "Import LiveWorld sample"
        if not self.shell.ensure_saved():
            return False
        yaml_path = self._open_path(
            "Import a LiveWorld sample", "LiveWorld sample (*.yaml *.yml);;All files (*)"
        )
        if yaml_path is None:
            return False
        out = self._new_project_folder("New project from the sample (a folder)", yaml_path)
        if out is None:
            return False

        def done(result) -> None:
            extra = "; the reconstruction is pending" if result.pending else ""
            self._open_new(out, title, result.warnings, extra)

        return self._run(import_liveworld_job(yaml_path, out), title, done)

    def import_nerfstudio(self) -> bool:
        """Replace the open project's camera path (one undoable step; nothing is written)."""
        import json

        from worldstudio.core.interop.nerfstudio import read_nerfstudio

        title = "Import nerfstudio camera path"
        path = self._open_path(
            "Import a nerfstudio camera path", "nerfstudio camera path (*.json);;All files (*)"
        )
        if path is None:
            return False
        try:
            camera_path, warnings = read_nerfstudio(path)
        except WorldStudioError as exc:
            self.error(title, str(exc))
            return False
        doc = self.shell.doc
        gen = doc.project.generation
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            rw, rh = data.get("render_width"), data.get("render_height")
            if (
                isinstance(rw, int | float)
                and isinstance(rh, int | float)
                and rh > 0
                and abs(rw / rh - gen.width / gen.height) > 1e-3
            ):
                warnings.append(
                    f"{path}: rendered at {rw:g}x{rh:g}; the project's video is "
                    f"{gen.width}x{gen.height} (vertical fov kept, so the horizontal view differs)"
                )
        except (OSError, ValueError, AttributeError):  # read_nerfstudio read it already
            pass

        def mutate(p) -> None:
            p.camera_path = camera_path

        try:
            doc.edit("Import nerfstudio camera path", "path", mutate)
        except (WorldStudioError, ValueError) as exc:
            self.error(title, f"{path}: {exc}")
            return False
        doc.set_selection(None)
        self._done(
            title,
            f"Camera path from {Path(path).name}: {len(camera_path.keyframes)} keyframes "
            "(Undo restores the old path)",
            warnings,
        )
        return True

    # ------------------------------------------------------------------ exports
    def export_scene_ply(self, with_path: bool = False) -> bool:
        from worldstudio.core.interop.exports import export_scene_ply

        title = "Export PLY"
        folder = self.saved_folder("the point cloud")
        if folder is None:
            return False
        out = self._save_path(
            "Export the scene point cloud",
            self._default_name("-with-path.ply" if with_path else ".ply"),
            "PLY (*.ply)",
            ".ply",
        )
        if out is None:
            return False
        return self._run(
            lambda ctx: export_scene_ply(folder, out, with_path),
            title,
            lambda r: self._done(title, f"Wrote {r[0]} ({r[1]} points)"),
        )

    def export_run_ply(self, run_id: str | None = None) -> bool:
        from worldstudio.core.interop.exports import export_run_ply

        title = "Export run clouds"
        folder = self.saved_folder("the run's clouds")
        if folder is None:
            return False
        runs = [r for r, _v, c in list_runs(folder) if c]
        if not runs:
            self.error(title, "This project has no run with point clouds yet")
            return False
        if run_id is None:
            choice = self.ask_run(runs, False)
            if choice is None:
                return False
            run_id = choice[0]
        out = self._save_path(
            "Export the run's clouds (one file per round)",
            self._default_name(f"-{run_id}.ply"),
            "PLY (*.ply)",
            ".ply",
        )
        if out is None:
            return False

        def done(results) -> None:
            names = ", ".join(p.name for p, _n in results)
            self._done(title, f"Wrote {len(results)} PLY file(s): {names}")

        return self._run(lambda ctx: export_run_ply(folder, run_id, out), title, done)

    def export_bundle(self) -> bool:
        from worldstudio.core.interop.bundle import export_bundle_job

        title = "Export bundle"
        folder = self.saved_folder("a bundle")
        if folder is None:
            return False
        out = self._save_path(
            "Export the project as a bundle",
            self._default_name(".zip"),
            "Project bundle (*.zip)",
            ".zip",
        )
        if out is None:
            return False
        return self._run(
            export_bundle_job(folder, out),
            title,
            lambda r: self._done(title, f"Wrote {r[0]}", r[1]),
        )

    def export_liveworld(self) -> bool:
        from worldstudio.core.interop.liveworld import export_liveworld_job

        title = "Export LiveWorld sample"
        folder = self.saved_folder("a LiveWorld sample")
        if folder is None:
            return False
        # A folder named like a file: a new one is created, an existing one is written into.
        out = self._save_path(
            "Export a LiveWorld sample into a folder (created if missing)",
            self._default_name("-liveworld"),
            "Folder (*)",
            "",
        )
        if out is None:
            return False
        if out.exists() and not out.is_dir():
            self.error(title, f"{out} is a file: choose a folder for the sample")
            return False
        return self._run(
            export_liveworld_job(folder, out),
            title,
            lambda r: self._done(
                title, f"Wrote {r.yaml_path} and {len(r.files) - 1} more file(s)", r.warnings
            ),
        )

    def export_nerfstudio(self) -> bool:
        from worldstudio.core.interop.nerfstudio import export_nerfstudio

        title = "Export nerfstudio camera path"
        folder = self.saved_folder("the camera path")
        if folder is None:
            return False
        out = self._save_path(
            "Export a nerfstudio camera path",
            self._default_name("-camera_path.json"),
            "nerfstudio camera path (*.json)",
            ".json",
        )
        if out is None:
            return False
        return self._run(
            lambda ctx: export_nerfstudio(folder, out),
            title,
            lambda r: self._done(title, f"Wrote {r[0]}", r[1]),
        )

    def export_path(self, fmt: str) -> bool:
        from worldstudio.core.interop.exports import export_path_csv, export_path_json

        title = f"Export baked path ({fmt.upper()})"
        folder = self.saved_folder("the baked path")
        if folder is None:
            return False
        suffix = f".{fmt}"
        out = self._save_path(
            "Export the baked camera path (one record per video frame)",
            self._default_name(f"-path{suffix}"),
            f"{fmt.upper()} (*{suffix})",
            suffix,
        )
        if out is None:
            return False
        fn = export_path_json if fmt == "json" else export_path_csv
        return self._run(
            lambda ctx: fn(folder, out),
            title,
            lambda r: self._done(title, f"Wrote {r[0]} ({r[1]} frames)"),
        )

    def export_run_mp4(self, run_id: str | None = None, layout: str | None = None) -> bool:
        from worldstudio.core.interop.exports import export_run_mp4_job

        title = "Export run video"
        folder = self.saved_folder("a run video")
        if folder is None:
            return False
        runs = [r for r, v, _c in list_runs(folder) if v]
        if not runs:
            self.error(title, "This project has no generation run with video yet")
            return False
        if run_id is None or layout is None:
            choice = self.ask_run(runs, True)
            if choice is None:
                return False
            run_id, layout = choice
        out = self._save_path(
            "Export the run as mp4",
            self._default_name(f"-{run_id}-{layout}.mp4"),
            "MP4 video (*.mp4)",
            ".mp4",
        )
        if out is None:
            return False
        return self._run(
            export_run_mp4_job(folder, run_id, out, layout),
            title,
            lambda r: self._done(title, f"Wrote {r[0]} ({r[1]} frames, {layout})"),
        )
