"""The bundled demo project: the oracle scene's frame at time 0 with its exact depth.

It gives a real point cloud with no model, a default camera path over its two rounds, the ball
as an entity and a monitor watching it, so every part of the studio is usable at first launch.
Everything is deterministic (fixed ids), so `worldstudio new --demo` reproduces the bundled one.
"""

from __future__ import annotations

import os

import numpy as np

from worldstudio.core.fileio import staged_folder
from worldstudio.core.oracle.scene import DEMO_FOV_DEG, OracleScene, demo_intrinsics
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

ROUND_TEXTS = (
    "a quiet room with a wooden floor, striped walls and coloured boxes",
    "the same room as the afternoon light warms up",
)
BALL_PROMPTS = (
    "an orange ball rolls across the floor to the right",
    "the orange ball keeps rolling in a wide circle around the room",
)


def demo_path(fps: int, total_frames: int) -> CameraPath:
    """A gentle move: push in, look right past the tower, and come back to the start."""
    from worldstudio.core.geometry.transforms import (
        look_at,
        pose_from_matrix,
        quat_tuple,
        vec3_tuple,
    )

    views = [
        ((0.0, 0.0, 0.0), (0.0, 0.3, 6.0)),
        ((0.4, -0.15, 0.9), (2.5, 0.5, 6.0)),
        ((-0.3, -0.1, 1.2), (-1.5, 0.5, 6.0)),
        ((0.0, 0.0, 0.3), (0.0, 0.3, 6.0)),
    ]
    # Split the video's duration over the segments, on whole frames so the keyframes are hit.
    segments = len(views) - 1
    frames = [(total_frames - 1) // segments] * segments
    frames[-1] += (total_frames - 1) - sum(frames)
    keyframes = []
    for i, (eye, target) in enumerate(views):
        position, quat = pose_from_matrix(look_at(np.array(eye), np.array(target)))
        seconds = frames[i] / fps if i < segments else 1.0
        keyframes.append(
            Keyframe(
                id=f"kf-demo-{i}",
                position=vec3_tuple(position),
                orientation=quat_tuple(quat),
                fov=DEMO_FOV_DEG,
                transition=seconds,
                easing="ease_in_out",
            )
        )
    return CameraPath(keyframes=keyframes, settings=PathSettings(fps=fps))


def create_demo_project(
    folder: str | os.PathLike, width: int = 832, height: int = 480, scene: OracleScene | None = None
) -> Project:
    """Write the demo project into ``folder`` (replacing it) and return its model.

    ``width`` and ``height`` are the source image's size and, rounded down to multiples of 16,
    the video size; tests use small sizes. ``scene``: another oracle scene than the demo's (a
    faster ball, say), for tests; the oracle and ideal backends must then be given it too.
    """
    from PIL import Image

    from worldstudio.core.geometry.transforms import mat3_tuple, vec3_tuple
    from worldstudio.core.pointcloud.ops import unproject_depth
    from worldstudio.core.pointcloud.ply import write_ply

    if width < 16 or height < 16:
        raise ValueError(f"the demo needs at least 16x16 pixels, got {width}x{height}")
    scene = scene or OracleScene.demo()
    K = demo_intrinsics(height=height, width=width, fov_deg=DEMO_FOV_DEG)
    frame = scene.render(np.eye(4), K, height, width, t=0.0)

    with staged_folder(folder, replace=True) as staging:
        pf = ProjectFolder(staging)
        pf.masks_dir.mkdir(parents=True)
        Image.fromarray(frame.rgb).save(staging / "source.png")
        np.save(pf.scene_dir / "depth.npy", frame.depth, allow_pickle=False)
        Image.fromarray(frame.entity_mask.astype(np.uint8) * 255).save(pf.masks_dir / "ball.png")
        cloud = unproject_depth(
            frame.depth, K, np.eye(4), rgb=frame.rgb, entity_id=frame.entity_ids
        )
        write_ply(pf.scene_dir / "points.ply", cloud)

        gen = GenerationSettings(
            backend="geometry", width=max(16, width // 16 * 16), height=max(16, height // 16 * 16)
        )
        origin = Pose(position=(0.0, 0.0, 0.0))
        ball = Entity(
            id="ent-ball",
            name=scene.entity_name,
            mask_file="scene/masks/ball.png",
            anchor=vec3_tuple(scene.entity_position(0.0)),
            prompts=list(BALL_PROMPTS),
            defined_from=origin,
            defined_fov=DEMO_FOV_DEG,
        )
        project = Project(
            name="Demo room",
            source=SourceImage(original_name="oracle scene, t = 0", width=width, height=height),
            intrinsics=Intrinsics(K=mat3_tuple(K), height=height, width=width),
            scene=Scene(point_count=len(cloud), metric=True, depth_model="oracle (exact depth)"),
            rounds=[Round(scene_text=t) for t in ROUND_TEXTS],
            entities=[ball],
            monitors=[
                Monitor(
                    id="mon-ball",
                    name="Ball monitor",
                    pose=origin,
                    fov=DEMO_FOV_DEG,
                    entity_ids=[ball.id],
                )
            ],
            generation=gen,
        )
        project.camera_path = demo_path(gen.fps, project.total_frames)
        pf.save(project)
    return project
