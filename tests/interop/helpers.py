"""Small hand-made projects for the interop tests (fast: no reconstruction, tiny images)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from worldstudio.core.geometry.camera import intrinsics_from_fov
from worldstudio.core.geometry.transforms import WORLD_UP, matrix_to_quat, rotation_about_axis
from worldstudio.core.project import (
    CameraPath,
    Entity,
    GenerationSettings,
    Intrinsics,
    Keyframe,
    Monitor,
    PathSettings,
    Pose,
    Project,
    ProjectFolder,
    Round,
    Scene,
    SourceImage,
)
from worldstudio.core.project.runs import RUN_FORMAT, RUN_VERSION, RunFolder

W, H = 160, 96


def keyframe(
    pos, yaw=0.0, pitch=0.0, fov=50.0, transition=1.0, easing="linear", kid=None
) -> Keyframe:
    R = rotation_about_axis(WORLD_UP, yaw) @ rotation_about_axis((1.0, 0.0, 0.0), pitch)
    q = matrix_to_quat(R)
    extra = {"id": kid} if kid else {}
    return Keyframe(
        position=tuple(float(v) for v in pos),
        orientation=tuple(float(v) for v in q),
        fov=fov,
        transition=transition,
        easing=easing,
        **extra,
    )


def default_keyframes(total_frames: int, fps: int = 16) -> list[Keyframe]:
    """Four keyframes spanning ``total_frames`` frames, on whole frames, varied fov and timing."""
    seg = [(total_frames - 1) // 3] * 3
    seg[-1] += (total_frames - 1) - sum(seg)
    return [
        keyframe((0, 0, 0), 0.0, 0.0, 50.0, seg[0] / fps),
        keyframe((0.5, -0.1, 0.8), 20.0, -5.0, 55.0, seg[1] / fps),
        keyframe((-0.2, -0.2, 1.5), -15.0, 3.0, 45.0, seg[2] / fps),
        keyframe((0.1, 0.0, 2.0), 5.0, 0.0, 50.0, 1.0),
    ]


def make_project(
    root: Path,
    *,
    rounds: int = 2,
    fpr: int = 65,
    fps: int = 16,
    keyframes: list[Keyframe] | None = None,
    entities: list[Entity] | None = None,
    monitors: bool = False,
    name: str = "Test project",
) -> Project:
    """A valid project folder with a source image, a path, rounds and prompts; no cloud."""
    root = Path(root)
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(root / "source.png")
    K = intrinsics_from_fov(50.0, H, W)
    if entities is None:
        entities = [
            Entity(
                id="ent-a", name="dog", prompts=[f"a dog runs, round {r}" for r in range(rounds)]
            ),
            Entity(id="ent-b", name="cat", prompts=["a cat sleeps"] + [""] * (rounds - 1)),
        ]
    mons = []
    if monitors:
        mons = [
            Monitor(
                id="mon-1",
                name="Left",
                pose=Pose(position=(-1.0, 0.0, 0.5)),
                fov=60.0,
                entity_ids=[entities[0].id],
            ),
            Monitor(
                id="mon-2",
                name="Right",
                pose=Pose(position=(1.0, 0.0, 0.5)),
                fov=40.0,
                enabled=False,
            ),
        ]
    project = Project(
        name=name,
        source=SourceImage(width=W, height=H),
        intrinsics=Intrinsics(
            K=tuple(tuple(float(v) for v in row) for row in K), height=H, width=W
        ),
        scene=Scene(pending=True),
        rounds=[Round(scene_text=f"scene text of round {r}") for r in range(rounds)],
        entities=entities,
        monitors=mons,
        generation=GenerationSettings(width=W, height=H, fps=fps, frames_per_round=fpr, seed=7),
    )
    total = rounds * fpr
    project.camera_path = CameraPath(
        keyframes=keyframes if keyframes is not None else default_keyframes(total, fps),
        settings=PathSettings(fps=fps),
    )
    ProjectFolder(root).save(project)
    return project


def smooth_trajectory(n: int, seed: int = 1) -> np.ndarray:
    """A wavy, non-spline c2w trajectory (n, 4, 4) starting at the identity."""
    from worldstudio.core.geometry.transforms import pose_matrix, quat_from_axis_angle

    t = np.linspace(0.0, 1.0, n)
    out = np.zeros((n, 4, 4))
    for i, s in enumerate(t):
        pos = np.array([0.4 * math.sin(3.1 * s), -0.1 * s * s, 1.7 * s + 0.05 * math.sin(11 * s)])
        yaw = 0.6 * math.sin(2.3 * s + seed)
        yaw -= 0.6 * math.sin(seed)  # identity at s = 0
        q = quat_from_axis_angle((0.0, -1.0, 0.1 * s), yaw)
        out[i] = pose_matrix(pos, q)
    out[0] = np.eye(4)
    return out


def tree(root: Path) -> list[str]:
    """Every path under root (relative, sorted), hidden ones included."""
    return sorted(p.relative_to(root).as_posix() for p in Path(root).rglob("*"))


def empty_run(project_dir: Path, run_id: str, fps: int | None = None) -> RunFolder:
    """A run folder with a minimal run.json (the engine writes a full one) and no rounds yet."""
    run = RunFolder(Path(project_dir) / "runs" / run_id)
    run.path.mkdir(parents=True)
    settings = {} if fps is None else {"fps": fps}
    run.write_meta(
        {"format": RUN_FORMAT, "version": RUN_VERSION, "id": run_id, "settings": settings}
    )
    return run


def write_sample(
    folder,
    poses=None,
    rounds=2,
    intrinsics=True,
    iter_input=None,
    image_size=(832, 480),
    extra=None,
    yaml_text=None,
):
    """A LiveWorld sample in ``folder``: sample.yaml, geometry.npz, image.png."""
    folder.mkdir(parents=True, exist_ok=True)
    n = rounds * 65
    if poses is None:
        poses = smooth_trajectory(n)
    arrays = {"poses_c2w": np.asarray(poses, dtype=np.float32)}
    if intrinsics is True:
        arrays["intrinsics"] = np.repeat(
            intrinsics_from_fov(48.0, 480, 832)[None], len(poses), 0
        ).astype(np.float32)
    elif intrinsics is not None and intrinsics is not False:
        arrays["intrinsics"] = intrinsics
    np.savez(folder / "geometry.npz", **arrays)
    Image.fromarray(np.full((image_size[1], image_size[0], 3), 90, np.uint8)).save(
        folder / "image.png"
    )
    if iter_input is None:
        iter_input = {
            str(r): {
                "scene_text": f"scene {r}",
                "fg_text": "" if r == 0 else f"a bird lands, round {r}",
            }
            for r in range(rounds)
        }
    data = {
        "geometry_file_name": "geometry.npz",
        "first_frame_image": "image.png",
        "iter_input": iter_input,
    }
    data.update(extra or {})
    (folder / "sample.yaml").write_text(
        yaml_text if yaml_text is not None else yaml.safe_dump(data)
    )
    return folder / "sample.yaml"
