"""A new project from one photograph: image -> crop -> depth -> focal -> point cloud -> folder.

:func:`new_project_from_image` is the job behind ``worldstudio new --image`` and the studio's
File > New from image (:func:`new_project_job`). It writes, per docs/FORMATS.md::

    source.png          the photo cropped to the project's aspect, at the project size
    scene/depth.npy     float32 (H, W) depth in world units (the model's dense depth)
    scene/points.ply    the unprojected cloud, flying pixels at depth edges removed
    scene/masks/        (empty; entity masks go here)
    project.json        intrinsics, scene, a camera path with one keyframe at the identity pose
                        with the estimated vertical fov, and 2 rounds

The folder is built in a temporary folder beside the target and renamed into place at the end,
so a failure (or a cancel) leaves nothing behind; an existing target is replaced only then.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from worldstudio.core.errors import WorldStudioError
from worldstudio.core.fileio import staged_folder
from worldstudio.core.jobs import JobContext
from worldstudio.core.project import Project

DEFAULT_SIZE = (832, 480)
DEFAULT_ROUNDS = 2
# Flying pixels: a pixel whose depth differs from a neighbour's by more than this fraction of
# its own depth sits on a depth edge and is left out of the cloud.
EDGE_REL_THRESHOLD = 0.05

STEPS = 5


def _check_size(size) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise WorldStudioError(f"size: expected (width, height), got {size!r}") from None
    if not (16 <= w <= 4096 and 16 <= h <= 4096) or w % 16 or h % 16:
        raise WorldStudioError(
            f"size: the project video size must be multiples of 16 pixels between 16 and 4096 "
            f"(such as 832x480), got {w}x{h}"
        )
    return w, h


def _check_fov(fov) -> float | None:
    if fov is None:
        return None
    f = float(fov)
    if not (math.isfinite(f) and 1.0 <= f <= 170.0):
        raise WorldStudioError(f"fov: the vertical field of view must be 1-170 degrees, got {fov}")
    return f


def _check_crop(crop) -> tuple[int, int, int, int] | None:
    if crop is None:
        return None
    try:
        x, y, width, height = (int(v) for v in crop)
    except (TypeError, ValueError):  # not numbers, or not four of them
        raise WorldStudioError(f"crop: expected x,y,width,height, got {crop!r}") from None
    return x, y, width, height


def reconstruction_models(depth_model=None, **_options) -> list[str]:
    """The models :func:`new_project_from_image` loads: its depth model (default: the
    catalogue's default depth model). For :mod:`worldstudio.core.models.requirements`."""
    from worldstudio.core.models import default_model

    return [str(depth_model) if depth_model else default_model("depth").name]


def _check_depth_model(depth_model) -> None:
    """A catalogue depth model that is missing and cannot be downloaded now is an error before
    anything else happens (other names: the loader's own error says what is wrong)."""
    from worldstudio.core.models import default_model, find_model
    from worldstudio.core.models.requirements import check_models, fetch_command

    info = find_model(str(depth_model)) if depth_model else default_model("depth")
    if info is not None and info.kind == "depth":
        check_models([info], fetch_command("new", depth_model=depth_model), "the reconstruction")


def new_project_from_image(
    image_path,
    out_folder,
    *,
    depth_model=None,
    fov=None,
    size=DEFAULT_SIZE,
    crop=None,
    ctx: JobContext | None = None,
) -> Project:
    """Reconstruct ``image_path`` into a new project folder ``out_folder`` and return its model.

    ``depth_model``: a catalogue name, hub repo id or local model folder (default: the default
    depth model). ``fov``: the photo's vertical field of view in degrees, used when there is no
    EXIF focal length and no model estimate (module :mod:`worldstudio.core.reconstruct.focal`). ``size``:
    (width, height) of the project video and source image. ``crop``: (x, y, width, height) in the
    upright original image's pixels (shrunk, centred, to the project's aspect); default: the
    largest centred crop. An existing folder at ``out_folder`` is replaced, and only once the new
    one is complete: callers that must not overwrite check first (as the CLI does without
    ``--force``). Errors a user can cause raise :class:`~core.errors.WorldStudioError` subclasses
    naming the file and the problem; nothing is written then.
    """
    from worldstudio.core.geometry.camera import intrinsics_from_fov
    from worldstudio.core.geometry.transforms import mat3_tuple
    from worldstudio.core.project import (
        CameraPath,
        CropBox,
        GenerationSettings,
        Intrinsics,
        Keyframe,
        PathSettings,
        Round,
        Scene,
        SourceImage,
    )
    from worldstudio.core.reconstruct.depth import load_depth_estimator
    from worldstudio.core.reconstruct.focal import choose_fov
    from worldstudio.core.reconstruct.image_io import prepare_image

    ctx = ctx or JobContext()
    w, h = _check_size(size)
    user_fov = _check_fov(fov)
    box = _check_crop(crop)
    image_path = Path(image_path)
    target = Path(out_folder)
    if target.exists() and not target.is_dir():
        raise WorldStudioError(f"{target}: exists and is not a folder")

    _check_depth_model(depth_model)
    ctx.progress(0, STEPS, "reading the image")
    prepared = prepare_image(image_path, (w, h), box)
    for note in prepared.notes:
        ctx.log(f"{image_path.name}: {note}")
    ctx.check_cancelled()

    ctx.progress(1, STEPS, "loading the depth model")
    estimator = load_depth_estimator(depth_model, ctx)
    ctx.check_cancelled()

    ctx.progress(2, STEPS, "estimating depth")
    prediction = estimator.predict(prepared.rgb)
    choice = choose_fov(
        project_size=(w, h),
        crop_height=prepared.crop[3],
        exif=prepared.exif,
        original_size=prepared.original_size,
        model_fov_h_deg=prediction.fov_h_deg,
        user_fov_deg=user_fov,
    )
    if user_fov is not None and choice.source in ("exif", "model"):
        ctx.log(f"--fov {user_fov:g} not used: the {choice.source} estimate comes first")
    ctx.log(
        f"field of view: {choice.fov_deg:.2f} degrees vertical, from {choice.source} ({choice.detail})"
    )
    K = intrinsics_from_fov(choice.fov_deg, h, w)
    depth = prediction.depth(focal_px=float(K[0, 0]))
    ctx.check_cancelled()

    ctx.progress(3, STEPS, "building the point cloud")
    cloud = depth_to_cloud(depth, K, prepared.rgb)
    ctx.check_cancelled()

    ctx.progress(4, STEPS, "writing the project")
    gen = GenerationSettings(width=w, height=h)
    project = Project(
        name=image_path.stem or "Untitled",
        source=SourceImage(
            file="source.png",
            original_name=image_path.name,
            original_size=prepared.original_size,
            crop=CropBox(
                x=prepared.crop[0],
                y=prepared.crop[1],
                width=prepared.crop[2],
                height=prepared.crop[3],
            ),
            height=h,
            width=w,
        ),
        intrinsics=Intrinsics(K=mat3_tuple(K), height=h, width=w),
        scene=Scene(
            points_file="scene/points.ply",
            depth_file="scene/depth.npy",
            point_count=len(cloud.xyz),
            metric=prediction.metric,
            depth_model=estimator.name,
        ),
        camera_path=CameraPath(
            keyframes=[
                Keyframe(
                    position=(0.0, 0.0, 0.0), orientation=(1.0, 0.0, 0.0, 0.0), fov=choice.fov_deg
                )
            ],
            settings=PathSettings(fps=gen.fps),
        ),
        rounds=[Round() for _ in range(DEFAULT_ROUNDS)],
        generation=gen,
    )
    write_project_folder(target, project, prepared.rgb, depth, cloud, ctx)
    ctx.progress(STEPS, STEPS, f"{len(cloud.xyz)} points")
    return project


def depth_to_cloud(
    depth: np.ndarray, K: np.ndarray, rgb: np.ndarray, c2w: np.ndarray | None = None
):
    """The cloud of every pixel with a valid depth that is not on a depth edge."""
    from worldstudio.core.pointcloud.ops import remove_depth_edges, unproject_depth

    valid = np.isfinite(depth) & (depth > 0)
    keep = valid & remove_depth_edges(depth, EDGE_REL_THRESHOLD)
    return unproject_depth(depth, K, np.eye(4) if c2w is None else c2w, rgb=rgb, mask=keep)


def write_project_folder(
    target: Path, project: Project, rgb, depth, cloud, ctx: JobContext
) -> None:
    """Write everything into a staging folder beside ``target``, then swap it into place."""
    from PIL import Image

    from worldstudio.core.pointcloud.ply import write_ply
    from worldstudio.core.project import ProjectFolder

    with staged_folder(target, replace=True) as staging:
        pf = ProjectFolder(staging)
        pf.masks_dir.mkdir(parents=True)
        Image.fromarray(rgb).save(staging / "source.png", compress_level=3)  # 3x faster than 6, +2%
        np.save(pf.scene_dir / "depth.npy", np.asarray(depth, dtype=np.float32), allow_pickle=False)
        write_ply(pf.scene_dir / "points.ply", cloud)
        ctx.check_cancelled()
        pf.save(project)


def new_project_job(image_path, out_folder, **kwargs) -> Callable[[JobContext], Project]:
    """The same as a job for the studio's worker thread: ``job(ctx) -> Project``."""

    def job(ctx: JobContext) -> Project:
        return new_project_from_image(image_path, out_folder, ctx=ctx, **kwargs)

    return job
