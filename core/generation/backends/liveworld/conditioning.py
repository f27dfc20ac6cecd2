"""A :class:`GenerationRequest` mapped onto LiveWorld's pixel inputs (numpy and OpenCV only).

LiveWorld has no mask: the State Adapter sees the projections and the model decides what to keep.
Per call (one camera, one round of F = 4k + 1 frames at H x W, multiples of 16):

- **Scene projection** (its latents are the state's first 16 channels): ``control_rgb``, the
  static world rendered into the camera, black in holes. For the observer, when the request has
  a foreground projection, the foreground is composited on top as LiveWorld's compositor does
  (``overlay_fg_on_scene``): the scene is blacked out inside the filled outer contours of the
  entities' pixels and the entities' pixels are pasted in. Monitors get the scene alone.
- **Foreground projection** (the state's other 16 channels): ``foreground_rgb`` (black where no
  entity) for the observer; none for monitors, and none when no entity pixel is visible: the
  channels are then zero *latents*, as LiveWorld feeds them.
- **Preceding frames** (clean latent frames P, rotary time -P..-1): the last ``context_frames``
  (LiveWorld: 10) of ``previous_frames``. With none (a first round) the call starts from one
  frame, as LiveWorld's first round does (it never trained without one): the first scene
  reference for the observer (the engine passes the source image there; it then stops being a
  reference, as LiveWorld has no scene references in its first round), the first frame of the
  scene projection for a monitor. The preceding frames' own scene and foreground projections (the
  state of the P frames) are the request's ``previous_control_rgb`` / ``previous_foreground_rgb``
  (the projections the camera's previous call got for those frames, as LiveWorld accumulates
  them), built like the target's: the observer's foreground composited onto its scene, a
  monitor's scene alone with its past foreground beside it. A first-round frame gets the first
  frame of the target's projections; they are zero latents otherwise, as in LiveWorld when they
  are missing.
- **Scene references** (one latent frame each, rotary time 0): ``reference_images``, at most
  ``max_scene_references`` (LiveWorld: 10 for the observer, 1 for its monitors); **instance
  references** (time T): ``instance_references``, at most ``max_instance_references``. Each is
  letterboxed onto a black H x W frame.
- **Strength**: ``request.strength`` (the project's per-role setting: observer 1.0, monitor 0.4).
- **Prompt**: LiveWorld's format, ``scene: ...; foreground: ...``, the foreground clause dropped
  when empty (:func:`liveworld_prompt`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from worldstudio.core.generation.backends.base import BackendError, GenerationRequest

__all__ = [
    "CONTEXT_FRAMES",
    "LiveWorldInputs",
    "MAX_INSTANCE_REFERENCES",
    "MAX_SCENE_REFERENCES",
    "MONITOR_SCENE_REFERENCES",
    "composite_foreground",
    "conditioning_video",
    "letterbox",
    "liveworld_inputs",
    "liveworld_prompt",
]

CONTEXT_FRAMES = 10  # LiveWorld's max_preceding_frames
MAX_SCENE_REFERENCES = 10  # LiveWorld's observer: up to 10 pose-retrieved references
MONITOR_SCENE_REFERENCES = 1  # LiveWorld's event (monitor) calls: max_scene_refs 1
MAX_INSTANCE_REFERENCES = 4
FOREGROUND_THRESHOLD = 10  # LiveWorld: a foreground pixel is one with a channel above 10


@dataclass
class LiveWorldInputs:
    """One call's pixels, ready for the VAE; None where LiveWorld feeds zero latents."""

    target_scene: np.ndarray  # (F, H, W, 3) uint8
    target_foreground: np.ndarray | None  # (F, H, W, 3) uint8
    preceding: np.ndarray | None  # (P, H, W, 3) uint8
    preceding_scene: np.ndarray | None  # (P, H, W, 3) uint8
    preceding_foreground: np.ndarray | None  # (P, H, W, 3) uint8
    scene_references: list[np.ndarray] = field(default_factory=list)  # (H, W, 3) uint8 each
    instance_references: list[np.ndarray] = field(default_factory=list)
    strength: float = 1.0


def _frames(name: str, value, shape: tuple) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype != np.uint8 or a.shape[1:] != shape[1:] or (shape[0] and a.shape[0] != shape[0]):
        raise BackendError(f"liveworld: {name} is {a.dtype} {a.shape}, expected uint8 {shape}")
    return a


def foreground_mask(foreground: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """(N, H, W) bool: the entities' pixels (labels >= 0 when given, else any channel > 10)."""
    if labels is not None:
        return np.asarray(np.asarray(labels) >= 0)
    return np.asarray((foreground > FOREGROUND_THRESHOLD).any(axis=-1))


def composite_foreground(scene: np.ndarray, foreground: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """LiveWorld's overlay: per frame, black out the scene inside the filled outer contours of the
    foreground pixels, then paste the foreground pixels."""
    import cv2

    out = scene.copy()
    for i in range(len(scene)):
        m = mask[i].astype(np.uint8)
        if not m.any():
            continue
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        filled = np.zeros_like(m)
        cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
        out[i][filled.astype(bool)] = 0
        out[i][mask[i]] = foreground[i][mask[i]]
    return out


def letterbox(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` scaled to fit ``height`` x ``width`` (aspect kept), centred on black (LiveWorld's
    instance references: the entity's crop, black around it, fitted and centred)."""
    import cv2

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise BackendError(
            f"liveworld: a reference image must be (H, W, 3) uint8, got {image.dtype} {image.shape}"
        )
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image.copy()
    scale = min(height / h, width / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    # bilinear either way, as LiveWorld sizes its instance references
    resized = cv2.resize(np.ascontiguousarray(image), (nw, nh), interpolation=cv2.INTER_LINEAR)
    out = np.zeros((height, width, 3), np.uint8)
    top, left = (height - nh) // 2, (width - nw) // 2
    out[top : top + nh, left : left + nw] = resized
    return out


def liveworld_prompt(prompt: str) -> str:
    """LiveWorld's prompt format: ``scene: <text>; foreground: <text>``, and ``scene: <text>``
    alone when there is no foreground text (an empty foreground clause is dropped)."""
    return re.sub(r";\s*foreground:\s*$", "", prompt.strip())


def liveworld_inputs(
    request: GenerationRequest,
    context_frames: int = CONTEXT_FRAMES,
    max_scene_references: int = MAX_SCENE_REFERENCES,
    max_instance_references: int = MAX_INSTANCE_REFERENCES,
) -> LiveWorldInputs:
    """The pixels LiveWorld's model is conditioned on for ``request`` (see the module notes)."""
    F, H, W = request.num_frames, request.height, request.width
    if F < 1 or (F - 1) % 4:
        raise BackendError(f"liveworld: {F} frames; the Wan VAE needs 4k + 1 (e.g. 65)")
    if H % 16 or W % 16:
        raise BackendError(f"liveworld: {W}x{H}; width and height must be multiples of 16")
    monitor = request.role == "monitor"

    if request.control_rgb is None:
        scene = np.zeros((F, H, W, 3), np.uint8)
    else:
        scene = _frames("control_rgb", request.control_rgb, (F, H, W, 3))
    foreground = None
    if not monitor and request.foreground_rgb is not None:
        fg = _frames("foreground_rgb", request.foreground_rgb, (F, H, W, 3))
        labels = request.foreground_labels
        if labels is not None and np.shape(labels) != (F, H, W):
            raise BackendError(
                f"liveworld: foreground_labels is {np.shape(labels)}, expected {(F, H, W)}"
            )
        mask = foreground_mask(fg, labels)
        if mask.any():
            scene = composite_foreground(scene, fg, mask)
            foreground = np.where(mask[..., None], fg, 0).astype(np.uint8)

    references = [np.asarray(r) for r in (request.reference_images or [])]
    previous = request.previous_frames
    preceding = preceding_scene = preceding_fg = None
    if previous is not None and len(previous) and context_frames > 0:
        preceding = _frames("previous_frames", previous, (0, H, W, 3))[-context_frames:]
        preceding_scene, preceding_fg = _preceding_state(request, len(preceding), monitor)
    else:  # a first round: start from one frame
        if not monitor and references:
            preceding = letterbox(references.pop(0), H, W)[None]
        else:
            preceding = scene[:1].copy()
        preceding_scene = scene[:1].copy()
        preceding_fg = None if foreground is None else foreground[:1].copy()

    cap = MONITOR_SCENE_REFERENCES if monitor else max_scene_references
    scene_refs = [letterbox(r, H, W) for r in references[: max(cap, 0)]]
    instance_refs = [
        letterbox(r, H, W)
        for r in list(request.instance_references or [])[: max(max_instance_references, 0)]
    ]
    return LiveWorldInputs(
        target_scene=scene,
        target_foreground=foreground,
        preceding=preceding,
        preceding_scene=preceding_scene,
        preceding_foreground=preceding_fg,
        scene_references=scene_refs,
        instance_references=instance_refs,
        strength=max(float(request.strength), 0.0),
    )


def _preceding_state(
    request: GenerationRequest, n: int, monitor: bool
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The scene and foreground projections of the last ``n`` preceding frames, built as the
    target's (the observer's scene with its foreground composited); None (zero latents) where the
    request has none frame for frame with its ``previous_frames``."""
    H, W = request.height, request.width
    scene_in, fg_in = request.previous_control_rgb, request.previous_foreground_rgb
    given = 0 if request.previous_frames is None else len(request.previous_frames)
    if scene_in is None or len(scene_in) != given:
        return None, None
    scene = _frames("previous_control_rgb", scene_in, (0, H, W, 3))[-n:]
    if fg_in is None or len(fg_in) != len(scene_in):
        return scene.copy(), None
    fg = _frames("previous_foreground_rgb", fg_in, (0, H, W, 3))[-n:]
    labels = request.previous_foreground_labels
    if labels is not None:
        if np.shape(labels) != (len(scene_in), H, W):
            raise BackendError(
                f"liveworld: previous_foreground_labels is {np.shape(labels)}, expected "
                f"{(len(scene_in), H, W)}"
            )
        labels = np.asarray(labels)[-n:]
    mask = foreground_mask(fg, labels)
    if not mask.any():
        return scene.copy(), None
    if not monitor:
        scene = composite_foreground(scene, fg, mask)
    else:
        scene = scene.copy()
    # a monitor too: LiveWorld feeds its event cameras their past foreground
    return scene, np.where(mask[..., None], fg, 0).astype(np.uint8)


def conditioning_video(inputs: LiveWorldInputs) -> tuple[np.ndarray, np.ndarray]:
    """What the model was told, as a video and mask for the run folder: the scene projection it
    encoded (with the foreground composited, for the observer) and an all-True mask (LiveWorld
    generates every pixel; the projection only conditions it)."""
    scene = inputs.target_scene
    return scene.copy(), np.ones(scene.shape[:3], bool)
