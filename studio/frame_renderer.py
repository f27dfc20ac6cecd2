"""Single-frame geometry renders (playhead pane, keyframe thumbnails) in a background thread.

Requests are keyed ("playhead", "thumbnail", ...): a new request replaces an older one of the
same key that has not started yet, so scrubbing never queues up stale work. torch is imported in
the render thread on the first request, never at start-up.
"""

from __future__ import annotations

import threading

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal


class _RenderThread(QThread):
    rendered = Signal(str, object, object)  # key, tag, image (H, W, 3) uint8
    failed = Signal(str, str)

    def __init__(self) -> None:
        super().__init__()
        self._cond = threading.Condition()
        self._queue: dict[str, tuple] = {}
        self._stop = False

    def submit(self, key: str, request: tuple) -> None:
        with self._cond:
            self._queue[key] = request
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()

    def run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                key = next(iter(self._queue))
                request = self._queue.pop(key)
            tag, cloud, c2w, fov, height, width, radius = request
            try:
                image = _render(cloud, c2w, fov, height, width, radius)
            except Exception as exc:  # noqa: BLE001 - shown in the pane, never fatal
                self.failed.emit(key, f"{type(exc).__name__}: {exc}")
                continue
            self.rendered.emit(key, tag, image)


def _render(cloud, c2w, fov: float, height: int, width: int, radius: int) -> np.ndarray:
    from worldstudio.core.geometry.camera import intrinsics_from_fov
    from worldstudio.core.pointcloud.render import render_points

    K = intrinsics_from_fov(float(fov), height, width)
    result = render_points(
        cloud.xyz,
        cloud.rgb,
        np.asarray(c2w)[None],
        K[None],
        height,
        width,
        radius=radius,
        background=(24, 26, 30),
    )
    return result.rgb[0].cpu().numpy()


class FrameRenderer(QObject):
    """Renders the scene cloud from one camera at a time, off the GUI thread."""

    rendered = Signal(str, object, object)  # key, tag (what the caller passed), image
    failed = Signal(str, str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._thread: _RenderThread | None = None
        self._closed = False  # after shutdown: a late request (a pending timer) starts nothing

    def request(
        self, key: str, tag, cloud, c2w, fov: float, height: int, width: int, radius: int = 1
    ) -> None:
        if cloud is None or self._closed:
            return
        if self._thread is None:
            self._thread = _RenderThread()
            self._thread.rendered.connect(self.rendered)
            self._thread.failed.connect(self.failed)
            self._thread.start()
        self._thread.submit(
            key,
            (
                tag,
                cloud,
                np.array(c2w, dtype=np.float64),
                float(fov),
                int(height),
                int(width),
                int(radius),
            ),
        )

    def shutdown(self) -> None:
        self._closed = True
        if self._thread is not None:
            self._thread.stop()
            self._thread.wait(10000)
            self._thread = None
