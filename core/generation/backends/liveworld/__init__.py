"""LiveWorld's trained model as a backend: Wan2.1-T2V-14B + the State Adapter + a LoRA.

LiveWorld (Apache-2.0 code, github ZichengDuan/LiveWorld; weights on the hub as
``ZichengD/LiveWorld``) conditions a Wan text-to-video backbone on the world it has built: a
*State Adapter* reads the VAE latents of the **scene projection** (the static world rendered into
the camera) and of the **foreground projection** (the entities' points) and adds its hints to the
backbone's hidden states, and the backbone attends to clean **preceding frames** and to **scene**
and **instance references** placed after the frames it generates. This package re-implements that
model on diffusers' Wan classes and runs it as the ``liveworld`` backend:

- :mod:`.model`: the State Adapter (a diffusers model) and its composition with
  ``WanTransformer3DModel`` (LiveWorld's forward: token order, rotary positions, per-frame
  timesteps, hint injection);
- :mod:`.weights`: LiveWorld's pickled checkpoints read safely, converted once to safetensors,
  loaded with strict key matching; the LoRA in diffusers' naming;
- :mod:`.sampling`: the full-step (UniPC, 50 steps, CFG) and few-step (4 steps, x0 then re-noise)
  samplers;
- :mod:`.conditioning`: a :class:`~worldstudio.core.generation.backends.base.GenerationRequest`
  mapped onto the model's pixel inputs (numpy only);
- :mod:`.pipeline`: text encoding, VAE encoding and decoding around the sampler;
- :mod:`.backend`: the ``liveworld`` backend (loading by repo id, memory profiles, previews,
  cancellation, LoRA strength).

What the engine is to provide (the conditioning redesign, issue 12), and what the backend does
until then:

- ``previous_control_rgb`` / ``previous_foreground_rgb``: the scene and foreground projections of
  the preceding frames (LiveWorld conditions the P frames on them). Not yet fields of
  ``GenerationRequest``: the backend reads them when present and otherwise feeds LiveWorld's zero
  latents (after a first round, whose single frame gets the target's first projection).
- ``strength`` per role (observer 1.0, monitor 0.4), the foreground projection and its labels,
  ``instance_references``, ``flow_shift``: read as given (the request's defaults until the engine
  fills them: strength 1.0 for every role, no foreground projection).
- ``context_frames``: the backend's default is LiveWorld's 10 (:attr:`~.backend.LiveWorldBackend.
  context_frames`); it uses the last 10 of whatever ``previous_frames`` holds.

Nothing here imports torch or diffusers at package import time.
"""
