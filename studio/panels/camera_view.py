"""The playhead camera's geometry-preview render: what the preview video will show at this frame.

Renders go through :class:`worldstudio.studio.frame_renderer.FrameRenderer` (torch, in its own thread); the
pane asks for a new one when the playhead or the path changes, at most one request per
``delay_ms`` (throttled, not debounced: during playback the playhead moves every tick, and the
pane follows it instead of waiting for it to stop). The renderer drops a request that a newer
one replaces before it starts, so a slow render never queues up stale frames.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from worldstudio.studio.document import ProjectDocument
from worldstudio.studio.frame_renderer import FrameRenderer
from worldstudio.studio.util import pixmap_fit

RENDER_WIDTH = 320
PLACEHOLDER = "The geometry preview of the playhead frame appears here."


class CameraViewPanel(QWidget):
    frame_shown = Signal(int)  # the frame whose render is now on screen

    def __init__(
        self,
        doc: ProjectDocument,
        renderer: FrameRenderer,
        parent: QWidget | None = None,
        delay_ms: int = 60,
    ):
        super().__init__(parent)
        self.doc = doc
        self.renderer = renderer
        self.image = None
        self.shown_frame: int | None = None
        self.screen = QLabel(PLACEHOLDER)
        self.screen.setObjectName("screen")
        self.screen.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.screen.setWordWrap(True)
        self.screen.setMinimumSize(160, 90)
        self.screen.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.live = QCheckBox("live")
        self.live.setChecked(True)
        self.live.setToolTip("Re-render when the playhead or the path changes")
        self.live.toggled.connect(lambda on: on and self.schedule())
        self.caption = QLabel("")
        self.caption.setObjectName("hint")
        row = QHBoxLayout()
        row.addWidget(self.caption, 1)
        row.addWidget(self.live)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.screen, 1)
        layout.addLayout(row)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self.render_now)
        self._started = False
        renderer.rendered.connect(self._on_rendered)
        renderer.failed.connect(self._on_failed)
        doc.playhead_changed.connect(lambda _f: self.schedule())
        doc.changed.connect(self._on_changed)

    def start(self) -> None:
        """Begin rendering (the window calls this once it is up, so start-up stays torch-free)."""
        self._started = True
        self.schedule()

    def _on_changed(self, aspect: str) -> None:
        if aspect in ("path", "scene", "all", "generation"):
            self.schedule()

    def schedule(self) -> None:
        """Render the playhead frame soon: within ``delay_ms`` of the first change since the last
        render (a running timer is left alone, so a stream of changes still renders)."""
        if (
            self._started
            and self.live.isChecked()
            and self.isVisible()
            and not self._timer.isActive()
        ):
            self._timer.start()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.schedule()

    def clear(self) -> None:
        """Forget the shown render (another project was opened); the next one replaces it."""
        self.image = None
        self.shown_frame = None
        self.screen.clear()
        self.screen.setText(PLACEHOLDER)
        self.caption.setText("")

    def render_now(self) -> None:
        doc = self.doc
        f = doc.playhead
        pose = doc.pose_at(f)
        if doc.cloud is None:
            self.screen.setText("No point cloud in this project yet.")
            return
        if pose is None:
            self.screen.setText("Add keyframes to see the camera's view.")
            return
        c2w, fov = pose
        g = doc.project.generation
        w = RENDER_WIDTH
        h = max(2, round(w * g.height / g.width))
        self.renderer.request("playhead", f, doc.cloud, c2w, fov, h, w, radius=1)

    def _on_rendered(self, key: str, tag, image) -> None:
        if key != "playhead":
            return
        self.image = image
        self.shown_frame = int(tag)
        self._show()
        fps = self.doc.project.camera_path.settings.fps
        self.caption.setText(
            f"frame {tag} · {int(tag) / fps:.2f} s · round {self.doc.round_of_frame(int(tag)) + 1}"
        )
        self.frame_shown.emit(int(tag))

    def _on_failed(self, key: str, message: str) -> None:
        if key == "playhead":
            self.screen.setText(message)

    def _show(self) -> None:
        if self.image is not None:
            self.screen.setPixmap(pixmap_fit(self.image, self.screen.width(), self.screen.height()))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._show()
