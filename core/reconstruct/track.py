"""Tracking entity masks through a sequence of frames with SAM 2.1's video model.

transformers' ``Sam2VideoModel`` keeps its memory in a ``Sam2VideoInferenceSession``, which is
plain torch; only its processor needs torchvision. So the frames are preprocessed by hand
(:func:`worldstudio.core.reconstruct.segment.sam_pixel_values`) and streamed into the session one at a time:
each frame's pixels are dropped once the frame is done, and memory outputs older than the
model can look back are pruned, so memory stays flat for any number of frames.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from worldstudio.core.reconstruct.depth import load_pretrained, resolve_model_folder, torch_device
from worldstudio.core.reconstruct.segment import (
    SegmentationError,
    sam_pixel_values,
    sam_preprocess_values,
    upsample_logits,
)

if TYPE_CHECKING:
    from worldstudio.core.jobs import JobContext

Key = TypeVar("Key", bound=Hashable)  # how the caller names its entities


def _check_inputs(frames, initial_masks) -> tuple[int, int]:
    if len(frames) == 0:
        raise SegmentationError("track_masks: no frames")
    first = np.asarray(frames[0])
    if first.ndim != 3 or first.shape[2] != 3 or first.dtype != np.uint8:
        raise SegmentationError(
            f"track_masks: frames must be (H, W, 3) uint8, got {first.shape} {first.dtype}"
        )
    H, W = first.shape[:2]
    for i, f in enumerate(frames):
        f = np.asarray(f)
        if f.shape != (H, W, 3) or f.dtype != np.uint8:
            raise SegmentationError(
                f"track_masks: frame {i} is {f.shape} {f.dtype}, expected ({H}, {W}, 3) uint8 like frame 0"
            )
    for key, m in initial_masks.items():
        if np.asarray(m).shape != (H, W):
            raise SegmentationError(
                f"track_masks: the mask of entity {key!r} is {np.asarray(m).shape}, expected ({H}, {W})"
            )
    return H, W


def track_masks(
    frames: Sequence[np.ndarray],
    initial_masks: Mapping[Key, np.ndarray],
    *,
    model: str | os.PathLike | None = None,
    ctx: JobContext | None = None,
) -> dict[Key, np.ndarray]:
    """Follow each entity's mask from frame 0 through ``frames``.

    ``frames``: T images (H, W, 3) uint8. ``initial_masks``: {entity_id: (H, W) bool} on frame 0.
    Returns {entity_id: (T, H, W) bool}; frame 0 is the given mask. An empty initial mask gives
    an empty track. ``model``: a SAM 2.1 catalogue name, repo id or folder (default: the default
    segmentation model). Reports progress per frame and honours cancellation through ``ctx``.
    """
    import torch
    import torch.nn.functional as F
    from transformers.models.sam2_video.modeling_sam2_video import Sam2VideoInferenceSession

    H, W = _check_inputs(frames, initial_masks)
    T = len(frames)
    out: dict[Key, np.ndarray] = {}
    live: dict[int, Key] = {}
    for i, (key, m) in enumerate(initial_masks.items()):
        m = np.asarray(m, dtype=bool)
        track = np.zeros((T, H, W), dtype=bool)
        track[0] = m
        out[key] = track
        if m.any():
            live[i + 1] = key
    if not live or T == 1:
        return out

    folder, _info = resolve_model_folder(model, "segmentation", ctx)
    device = torch_device()
    net = load_pretrained("Sam2VideoModel", folder, device)
    size = int(net.config.image_size)
    mean, std = sam_preprocess_values(folder)
    keep_outputs = (
        int(getattr(net.config, "max_object_pointers_in_encoder", 16))
        + int(net.config.num_maskmem)
        + 2
    )

    session = Sam2VideoInferenceSession(
        video_height=H,
        video_width=W,
        inference_device=device,
        inference_state_device=device,
        video_storage_device=device,
        dtype=torch.float32,
    )
    with torch.inference_mode():
        for obj_id, key in live.items():
            idx = session.obj_id_to_idx(obj_id)
            full = torch.from_numpy(np.asarray(initial_masks[key], dtype=np.float32))
            prompt = F.interpolate(
                full[None, None].to(device),
                size=(size, size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
            session.add_mask_inputs(idx, 0, (prompt >= 0.5).float())
        session.obj_with_new_inputs = list(live)
        for t in range(T):
            if ctx is not None:
                ctx.check_cancelled()
                ctx.progress(t, T, "tracking masks")
            pv = sam_pixel_values(np.asarray(frames[t]), size, mean, std, device)
            result = net(inference_session=session, frame_idx=t, frame=pv[0])
            if t > 0:
                masks = upsample_logits(result.pred_masks, H, W)
                for j, obj_id in enumerate(result.object_ids):
                    out[live[obj_id]][t] = masks[j]
            # bounded memory: drop this frame's pixels and outputs the model no longer reads
            if session.processed_frames is not None:
                session.processed_frames.pop(t, None)
            for per_obj in session.output_dict_per_obj.values():
                stale = [f for f in per_obj["non_cond_frame_outputs"] if f < t - keep_outputs]
                for f in stale:
                    del per_obj["non_cond_frame_outputs"][f]
    if ctx is not None:
        ctx.progress(T, T, "tracking masks")
    return out
