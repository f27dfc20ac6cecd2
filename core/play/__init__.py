"""Play: an action-driven, interactive world on the world engine.

The player acts (DeepVerse's action steps, from an action string, a file of one action per frame,
or the studio's keys) and the engine generates the next chunk of frames from the camera those
actions make. :mod:`.controls` (keys, steps, motion, the step path), :mod:`.sources` (the observer
sources the engine asks per chunk), :mod:`.session` (a session as a job), :mod:`.outputs` (video,
depth, world snapshots, play.json), :mod:`.overlay` (the action drawn on a frame) and
:mod:`.backends` (chunk sizes, quality presets, models, LoRAs).
"""

from worldstudio.core.play.controls import (
    KeyState,
    Motion,
    PlayStep,
    StepPath,
    format_steps,
    read_actions_file,
    step_from_keys,
    steps_from_actions,
)
from worldstudio.core.play.session import PlayOptions, PlayResult, PlaySession, play_job
from worldstudio.core.play.sources import LiveObserver, Pacer, PlannedObserver, PlayChunk

__all__ = [
    "KeyState",
    "LiveObserver",
    "Motion",
    "Pacer",
    "PlannedObserver",
    "PlayChunk",
    "PlayOptions",
    "PlayResult",
    "PlaySession",
    "PlayStep",
    "StepPath",
    "format_steps",
    "play_job",
    "read_actions_file",
    "step_from_keys",
    "steps_from_actions",
]
