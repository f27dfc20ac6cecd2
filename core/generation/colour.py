"""Colour drift correction between rounds.

A video model continuing from a few context frames tends to shift the colours of each new clip a
little (brighter, more saturated, a cast); over many rounds the shifts add up. The engine
corrects each call's frames against the frames it continued from (:func:`match_colours`):

1. The *probe* is the first P frames of the new clip, the *reference* the P context frames the
   call was given (the previous round's last frames): neighbours in time, so they show nearly
   the same content, and a difference in their colour statistics is drift, not a new view.
2. Both are taken to CIE L*a*b* (OpenCV, float) and each channel's mean and standard deviation
   are compared. The correction is the per-channel affine map that gives the probe the
   reference's mean and spread (Reinhard et al.'s colour transfer): ``x' = (x - mu_p) * s +
   mu_r`` with ``s = sd_r / sd_p``.
3. It is applied to every frame of the clip, then back to 8-bit RGB.

Guards: a difference below the dead band (:data:`DEAD_BAND_MEAN` in L*a*b* units,
:data:`DEAD_BAND_SCALE` relative) is what the camera's motion between neighbouring frames gives on
its own, so it is left alone and the frames stay byte for byte as generated (a model without
drift, e.g. the oracle, is never touched); a larger correction is clamped
(:data:`MAX_SHIFT`, :data:`SCALE_RANGE`) so that a clip that really does turn to a different
view is not forced to the old view's colours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEAD_BAND_MEAN = 1.0  # L*a*b* units (L* runs 0..100)
DEAD_BAND_SCALE = 0.03
MAX_SHIFT = 20.0
SCALE_RANGE = (0.8, 1.25)


@dataclass(frozen=True)
class ColourMatch:
    """What :func:`match_colours` did: the per-channel (L*, a*, b*) shift and scale it applied
    (zeros and ones when it left the frames alone)."""

    applied: bool
    shift: tuple[float, float, float]
    scale: tuple[float, float, float]

    def as_dict(self) -> dict:
        return {
            "applied": self.applied,
            "shift": [round(v, 4) for v in self.shift],
            "scale": [round(v, 4) for v in self.scale],
        }


NOTHING = ColourMatch(False, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def to_lab(frames: np.ndarray) -> np.ndarray:
    """uint8 RGB (..., H, W, 3) -> float32 L*a*b* (L* 0..100, a*, b* about -128..127)."""
    import cv2

    rgb = np.ascontiguousarray(frames, dtype=np.float32).reshape(-1, frames.shape[-2], 3) / 255.0
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).reshape(frames.shape).astype(np.float32)


def from_lab(lab: np.ndarray) -> np.ndarray:
    """float32 L*a*b* -> uint8 RGB (rounded, clipped)."""
    import cv2

    flat = np.ascontiguousarray(lab, dtype=np.float32).reshape(-1, lab.shape[-2], 3)
    rgb = cv2.cvtColor(flat, cv2.COLOR_LAB2RGB).reshape(lab.shape)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def lab_stats(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of ``frames`` in L*a*b*."""
    lab = to_lab(np.asarray(frames, np.uint8)).reshape(-1, 3).astype(np.float64)
    return lab.mean(axis=0), lab.std(axis=0)


def match_colours(frames: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, ColourMatch]:
    """``frames`` (F, H, W, 3) uint8 corrected to continue the colours of ``reference`` (P, H, W,
    3) uint8, the frames they follow (see the module docstring). Returns the frames (the same
    array when nothing was applied) and what was done."""
    frames = np.asarray(frames)
    reference = np.asarray(reference)
    if reference.ndim != 4 or not len(reference) or reference.shape[1:] != frames.shape[1:]:
        return frames, NOTHING
    probe = frames[: len(reference)]
    mu_r, sd_r = lab_stats(reference)
    mu_p, sd_p = lab_stats(probe)
    scale = np.where(sd_p > 1e-3, sd_r / np.maximum(sd_p, 1e-3), 1.0)
    scale = np.clip(scale, *SCALE_RANGE)
    shift = mu_r - mu_p
    if np.all(np.abs(shift) < DEAD_BAND_MEAN) and np.all(np.abs(scale - 1.0) < DEAD_BAND_SCALE):
        return frames, NOTHING
    shift = np.clip(shift, -MAX_SHIFT, MAX_SHIFT)
    lab = to_lab(frames)
    lab = (lab - mu_p.astype(np.float32)) * scale.astype(np.float32) + (mu_p + shift).astype(
        np.float32
    )
    lab[..., 0] = np.clip(lab[..., 0], 0.0, 100.0)
    out = from_lab(lab)
    return out, ColourMatch(
        True,
        (float(shift[0]), float(shift[1]), float(shift[2])),
        (float(scale[0]), float(scale[1]), float(scale[2])),
    )
