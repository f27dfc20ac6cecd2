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

What the world engine gives it, as LiveWorld feeds its model: observer strength 1.0 and
monitors 0.4 (the project's per-role strengths), no foreground projection for monitors, up to 10
preceding frames (``context_frames``) with the projections their call got
(``previous_control_rgb``, ``previous_foreground_rgb``), scene references retrieved by pose with
the entities blacked out and one instance reference per visible entity, 65-frame rounds at
832x480 and 16 fps (the project's defaults).

Nothing here imports torch or diffusers at package import time.
"""
