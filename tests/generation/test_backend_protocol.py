"""What every backend declares (the Backend protocol), the defaults BaseBackend gives, and the
engine using those declarations (no probing)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.generation.engine_support import (
    CancellingBackend,
    FailingBackend,
    NoisyBackend,
    demo_project,
)
from worldstudio.core.generation.backends import (
    CONTEXT_FRAMES,
    Backend,
    BaseBackend,
    GenerationRequest,
    ModelChoice,
    backend_names,
    get_backend,
)
from worldstudio.core.generation.memory import LIVEWORLD_PROFILES, PROFILES
from worldstudio.core.models import find_model

H, W, F = 32, 48, 5

# what each registered backend declares: lifter, default context frames, memory profiles,
# flow shift at 480x832 and at 720x1280, whether it offers models
DECLARED = {
    "geometry": ("render", 0, (), None, None, False),
    "oracle": ("oracle", 0, (), None, None, False),
    "ideal": ("ideal", 0, (), None, None, False),
    "wan-vace": ("model", 4, PROFILES, 3.0, 5.0, True),
    "wan-i2v": ("model", 1, PROFILES, 3.0, 5.0, True),
    "liveworld": ("model", 10, LIVEWORLD_PROFILES, 5.0, 5.0, True),
}


def _request(**fields) -> GenerationRequest:
    values = dict(
        prompt="scene: a street; foreground: a cat",
        num_frames=F,
        height=H,
        width=W,
        steps=1,
        guidance=1.0,
        seed=0,
        control_rgb=np.full((F, H, W, 3), 40, np.uint8),
        control_mask=None,
        previous_frames=None,
        reference_images=[],
    )
    values.update(fields)
    return GenerationRequest(**values)


def test_every_registered_backend_declares_what_the_engine_needs():
    assert sorted(DECLARED) == backend_names()
    for name, (lifter, context, profiles, sd, hd, has_models) in DECLARED.items():
        backend = get_backend(name, model_id=None if name == "liveworld" else "unused")
        try:
            assert isinstance(backend, Backend) and isinstance(backend, BaseBackend), name
            assert (backend.name, backend.lifter, backend.context_frames) == (name, lifter, context)
            assert backend.profiles == profiles, name
            assert backend.flow_shift_for(480, 832) == sd, name
            assert backend.flow_shift_for(720, 1280) == hd, name
            models = backend.models()
            assert bool(models) == has_models, name
            for choice in models:  # every download a model needs is in the catalogue
                assert isinstance(choice, ModelChoice) and choice.needs
                assert all(find_model(n) is not None for n in choice.needs), choice
            video, mask = backend.conditioning(_request())
            assert video.dtype == np.uint8 and video.shape[1:] == (H, W, 3), name
            assert mask.dtype == bool and mask.shape == video.shape[:3], name
            if not profiles:
                assert backend.estimate(H, W, F, "gpu") is None, name
        finally:
            backend.close()


def test_the_base_defaults_and_the_test_backends():
    for backend in (NoisyBackend(), FailingBackend(), CancellingBackend()):
        assert isinstance(backend, Backend)
        assert backend.context_frames == CONTEXT_FRAMES == 5
        assert backend.flow_shift_for(480, 832) is None and backend.models() == []
        assert backend.profiles == () and backend.estimate(H, W, F) is None
    # the request's own conditioning: the foreground over the scene, the mask (all True without)
    labels = np.full((F, H, W), -1, np.int16)
    labels[:, :4, :4] = 0
    fg = np.zeros((F, H, W, 3), np.uint8)
    fg[labels >= 0] = 200
    mask = np.zeros((F, H, W), bool)
    mask[:, :, W // 2 :] = True
    video, got = NoisyBackend().conditioning(
        _request(control_mask=mask, foreground_rgb=fg, foreground_labels=labels)
    )
    assert video[0, 0, 0].tolist() == [200] * 3 and video[0, -1, -1].tolist() == [40] * 3
    assert np.array_equal(got, mask)
    _, everything = NoisyBackend().conditioning(_request())
    assert everything.all()


def test_liveworld_declares_its_variants_and_their_flow_shift():
    from worldstudio.core.generation.backends.liveworld import sampling

    full = get_backend("liveworld", model_id="liveworld")
    few = get_backend("liveworld", model_id="liveworld-4step")
    assert full.flow_shift_for(480, 832) == sampling.FULL_STEP_SHIFT == 5.0
    assert few.flow_shift_for(480, 832) == sampling.FEW_STEP_SHIFT == 8.0
    assert [c.model_id for c in full.models()] == ["liveworld", "liveworld-4step"]
    assert full.models()[1].needs == (
        "wan2.1-t2v-14b",
        "liveworld",
        "wan2.1-t2v-14b-stepdistill",
    )
    assert "fp8" in full.profiles and "fp8" not in PROFILES


def test_the_ideal_lifter_takes_the_ideal_backend_only():
    from worldstudio.core.errors import WorldStudioError
    from worldstudio.core.generation.backends.ideal import IdealBackend
    from worldstudio.core.generation.lift import IdealLifter, make_lifter

    ideal = IdealBackend()
    lifter = make_lifter("ideal", backend=ideal)
    assert isinstance(lifter, IdealLifter) and lifter.backend is ideal
    for other in (NoisyBackend(), None):
        with pytest.raises(WorldStudioError, match="only the ideal backend"):
            make_lifter("ideal", backend=other)


def test_the_engine_resolves_context_and_flow_shift_from_the_backend(tmp_path_factory, tmp_path):
    """No setting in the project: the run takes the backend's declared context frames and flow
    shift, and every call gets them."""
    from worldstudio.core.generation.engine import RunOptions, generate_job
    from worldstudio.core.jobs import JobContext
    from worldstudio.core.project.runs import RunFolder

    class Declaring(NoisyBackend):
        context_frames = 3

        def flow_shift_for(self, height: int, width: int) -> float:
            return 2.5 if (height, width) == (48, 64) else 9.0

    project = demo_project(tmp_path_factory, tmp_path / "demo.wsproj")
    backend = Declaring()
    run = generate_job(
        project, RunOptions(backend=backend, steps=1, size=(64, 48), frames_per_round=9)
    )(JobContext())
    settings = RunFolder(run.run_dir).read_meta()["settings"]
    assert (settings["context_frames"], settings["flow_shift"]) == (3, 2.5)
    later = [q for q in backend.requests if q.round_index == 1]
    assert later and all(len(q.previous_frames) == 3 and q.flow_shift == 2.5 for q in later)
