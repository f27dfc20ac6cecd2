"""Models ▸ Manage models…: the catalogue with what is on this machine, downloads with progress,
and local-folder overrides.

The table comes from :func:`worldstudio.core.models.list_status` (name, kind, status, download size, memory
need, licence, hub repo). Download runs :func:`worldstudio.core.models.download_job` through the studio's
:class:`~studio.worker.JobRunner`, in the downloads lane (one download at a time, beside a
generation or a training); the dialog follows its own job's handle (progress and Cancel here,
and in the status bar, where the download goes on when the dialog is closed); with no
network or with ``HF_HUB_OFFLINE`` set it fails at once with core's one-line message, shown in
red under the table. "Use local folder…" records a folder in the models config file
(:func:`worldstudio.core.models.save_local_dir_to_config`); "Forget local folder" removes it.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from worldstudio.core import models
from worldstudio.core.errors import WorldStudioError
from worldstudio.studio.worker import DOWNLOADS, JobHandle, JobRunner

COLUMNS = ("Model", "Kind", "Status", "Size", "Memory", "Licence", "Hub repository", "", "")
COL_STATUS, COL_DOWNLOAD, COL_LOCAL = 2, 7, 8

STATUS_TEXT = {
    "downloaded": ("✓ downloaded", "#7fd18b"),
    "local": ("✓ local folder", "#7fd18b"),
    "missing": ("not downloaded", "#9aa1ad"),
    "incomplete": ("partly downloaded", "#f0b45a"),
    "local-missing": ("⚠ local folder has no model", "#ff8a7a"),
}
NOTE_COLOR = "#f0b45a"
ERROR_COLOR = "#ff8a7a"


def short_licence(info: models.ModelInfo) -> str:
    """The licence as the table shows it: research-only licences say so right there."""
    if "research" in info.licence_note.lower():
        return f"{info.licence} — research use only"
    return info.licence_text


class ModelsDialog(QDialog):
    """The model manager. ``runner`` is the studio's job runner (the window's status bar shows
    what it runs)."""

    def __init__(self, runner: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.setObjectName("modelsDialog")
        self.runner = runner
        self.job: JobHandle | None = None  # this dialog's latest download
        self.job_model = ""  # the model it downloads
        self.statuses: list[models.ModelStatus] = []
        self.download_buttons: dict[str, QPushButton] = {}
        self.local_buttons: dict[str, QToolButton] = {}

        intro = QLabel(
            "Every model World Studio can use. Downloads go to the Hugging Face cache "
            f"(<code>{models.hub_cache_dir()}</code>) and resume where they stopped; a model you "
            "already have elsewhere can be used from its folder. Size is the download, memory what "
            "the model needs to run."
        )
        intro.setWordWrap(True)
        intro.setTextFormat(Qt.TextFormat.RichText)
        intro.setObjectName("hint")
        self.offline_label = QLabel("")
        self.offline_label.setWordWrap(True)
        self.offline_label.setStyleSheet(f"color: {NOTE_COLOR};")

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)

        self.notes = QLabel("")
        self.notes.setWordWrap(True)
        self.notes.setStyleSheet(f"color: {NOTE_COLOR};")

        self.job_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the download (it resumes next time)")
        self.cancel_button.clicked.connect(self.cancel_download)
        job_row = QHBoxLayout()
        job_row.addWidget(self.job_label)
        job_row.addWidget(self.progress, 1)
        job_row.addWidget(self.cancel_button)
        self.job_row = QWidget()
        self.job_row.setLayout(job_row)
        job_row.setContentsMargins(0, 0, 0, 0)
        self.job_row.hide()

        self.message = QLabel("")
        self.message.setObjectName("modelsMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        refresh = buttons.addButton("Refresh", QDialogButtonBox.ButtonRole.ActionRole)
        refresh.clicked.connect(self.refresh)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.offline_label)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.notes)
        layout.addWidget(self.job_row)
        layout.addWidget(self.message)
        layout.addWidget(buttons)

        runner.jobs_changed.connect(self._update_buttons)
        self.refresh()
        self._fit_to_table()

    # ------------------------------------------------------------------ the table
    def refresh(self) -> None:
        """Read the catalogue's status again (never touches the network)."""
        try:
            self.statuses = models.list_status()
        except WorldStudioError as exc:  # e.g. a broken models.json
            self.statuses = []
            self.show_message(str(exc), error=True)
        self.offline_label.setText(
            "Offline: HF_HUB_OFFLINE is set, so downloads fail; use models already here or local folders."
            if models.is_offline()
            else ""
        )
        self.offline_label.setVisible(models.is_offline())
        t = self.table
        t.setRowCount(len(self.statuses))
        self.download_buttons.clear()
        self.local_buttons.clear()
        for row, st in enumerate(self.statuses):
            info = st.info
            name = info.name + ("  (default)" if info.default else "")
            memory = f"{info.memory_gb:g} GB"
            cells = (
                name,
                info.kind,
                "",
                "~" + info.size_text,
                memory,
                short_licence(info),
                info.repo_id,
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(info.description)
                t.setItem(row, col, item)
            t.item(row, 0).setData(Qt.ItemDataRole.UserRole, info.name)
            text, color = STATUS_TEXT.get(st.status, (st.status, "#c8cdd6"))
            status = t.item(row, COL_STATUS)
            status.setText(text)
            status.setForeground(QColor(color))
            status.setToolTip(st.where)
            lic = t.item(row, 5)
            lic.setToolTip(info.licence_text)
            if info.licence_note:
                lic.setForeground(QColor(NOTE_COLOR))
            for col in (3, 4):
                t.item(row, col).setTextAlignment(
                    Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                )

            dl = QPushButton("Download")
            dl.setObjectName(f"download:{info.name}")
            dl.clicked.connect(lambda _c=False, n=info.name: self.download(n))
            self.download_buttons[info.name] = dl
            t.setCellWidget(row, COL_DOWNLOAD, dl)

            local = QToolButton()
            local.setText("Use local folder…")
            local.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            local.clicked.connect(lambda _c=False, n=info.name: self.choose_local_dir(n))
            menu = QMenu(local)
            forget = QAction("Forget local folder", menu)
            forget.triggered.connect(lambda _c=False, n=info.name: self.forget_local_dir(n))
            forget.setEnabled(st.status in ("local", "local-missing"))
            menu.addAction(forget)
            local.setMenu(menu)
            local.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
            self.local_buttons[info.name] = local
            t.setCellWidget(row, COL_LOCAL, local)
        header = t.horizontalHeader()
        for col in range(len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(6, QHeaderView.ResizeMode.Stretch)
        notes = [
            f"⚠ {s.info.name}: {s.info.licence_text}" for s in self.statuses if s.info.licence_note
        ]
        self.notes.setText("\n".join(notes))
        self.notes.setVisible(bool(notes))
        self._update_buttons()

    def _fit_to_table(self) -> None:
        """As large as the table (every row and column shown) where the screen allows."""
        t = self.table
        t.resizeColumnsToContents()
        width = sum(t.columnWidth(c) for c in range(t.columnCount())) + 2 * t.frameWidth() + 40
        height = (
            t.horizontalHeader().height()
            + sum(t.rowHeight(r) for r in range(t.rowCount()))
            + 2 * t.frameWidth()
        )
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        max_w = screen.width() - 40 if screen is not None else 1500
        max_h = screen.height() - 260 if screen is not None else 600
        t.setMinimumHeight(min(height + 2, max_h))
        w = min(max(width, 900), max_w)
        lay = self.layout()
        h = lay.heightForWidth(w) if lay.hasHeightForWidth() else -1
        self.resize(w, max(h, self.minimumSizeHint().height()))

    def status_of(self, name: str) -> models.ModelStatus:
        for st in self.statuses:
            if st.info.name == name:
                return st
        raise KeyError(name)

    def _update_buttons(self) -> None:
        busy = not self.runner.can_start(DOWNLOADS)
        for name, button in self.download_buttons.items():
            try:
                present = self.status_of(name).present
            except KeyError:
                continue
            if name == self.job_model and self.job is not None and not self.job.ended:
                button.setText("Downloading…")
                button.setEnabled(False)
            else:
                button.setText("Present" if present else "Download")
                button.setEnabled(not present and not busy)
                button.setToolTip(
                    "Already on this machine"
                    if present
                    else f"Download {name} ({self.status_of(name).info.size_text})"
                )

    def show_message(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet(f"color: {ERROR_COLOR};" if error else "")
        self.message.setProperty("error", error)
        self.message.setText(text)

    # ------------------------------------------------------------------ downloads
    def download(self, name: str) -> bool:
        """Start downloading ``name`` in the worker; False while another download runs."""
        if not self.runner.can_start(DOWNLOADS):
            self.show_message("Another download is running; wait for it or cancel it", error=True)
            return False
        try:
            job = models.download_job(name)
        except WorldStudioError as exc:
            self.show_message(str(exc), error=True)
            return False
        info = self.status_of(name).info
        handle = self.runner.start(job, f"Download {name}", DOWNLOADS)
        if handle is None:
            return False
        self.job, self.job_model = handle, name
        handle.progress.connect(self._on_progress)
        handle.finished.connect(self._on_finished)
        handle.failed.connect(self._on_failed)
        handle.cancelled.connect(self._on_cancelled)
        self.show_message("")
        self.job_label.setText(f"Downloading {name}")
        self.progress.setRange(0, 0)  # busy until the first bytes arrive
        self.progress.setFormat(f"~{info.size_text}")
        self.job_row.show()
        self._update_buttons()
        return True

    def cancel_download(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def _on_progress(self, done: int, total: int, _message: str) -> None:
        if total > 0:
            # bytes can exceed a QProgressBar's int range: show per mille
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * done / total))
            self.progress.setFormat(f"{models.format_bytes(done)} of {models.format_bytes(total)}")

    def _end(self) -> str:
        self.job_row.hide()
        self.refresh()
        return self.job_model

    def _on_finished(self, result) -> None:
        name = self._end()
        self.show_message(f"{name} is ready ({result})")

    def _on_failed(self, message: str) -> None:
        self._end()
        self.show_message(message, error=True)

    def _on_cancelled(self) -> None:
        name = self._end()
        self.show_message(f"Download of {name} cancelled; it resumes where it stopped next time")

    # ------------------------------------------------------------------ local folders
    def choose_local_dir(self, name: str) -> Path | None:
        """Ask for a folder holding model ``name`` and record it in the models config file."""
        st = self.status_of(name)
        folder = QFileDialog.getExistingDirectory(
            self, f"Folder holding {name} ({st.info.repo_id})", str(st.path or Path.home())
        )
        if not folder:
            return None
        try:
            cfg = models.save_local_dir_to_config(name, folder)
        except WorldStudioError as exc:
            self.show_message(str(exc), error=True)
            return None
        self.refresh()
        st = self.status_of(name)
        if st.present:
            self.show_message(f"{name} now loads from {folder} (recorded in {cfg})")
        else:
            self.show_message(f"{name}: {st.where}", error=True)
        return Path(folder)

    def forget_local_dir(self, name: str) -> None:
        try:
            models.save_local_dir_to_config(name, None)
        except WorldStudioError as exc:
            self.show_message(str(exc), error=True)
            return
        self.refresh()
        self.show_message(f"{name}: local folder forgotten")
