"""LiveWorld's State Adapter and its composition with diffusers' ``WanTransformer3DModel``.

The architecture follows LiveWorld's ``StateAdapterWanModel`` (``liveworld/wan/modules/
model_state_adapter.py``, commit db9c9f5):

**Tokens.** The backbone reads one latent video in LiveWorld's frame order
``[T target | P preceding | R_scene scene references | R_inst instance references]``; after the
1x2x2 patch embedding every latent frame is ``(h/2) * (w/2)`` tokens. Only the T frames are noisy;
the others are clean latents the model attends to.

**Timesteps** are per latent frame: the noise level on T, 0 on P and on the references. Every
block's modulation (shift, scale, gate) and the output head's are per frame.

**Rotary positions** are segment-aware in time: ``0 .. T-1`` for T, ``-P .. -1`` for P, ``0`` for
every scene reference, ``T`` for every instance reference; height and width as in Wan.

**The State Adapter** reads the *state*: 32 channels per latent frame, the VAE latents of the
scene projection (16) and of the foreground projection (16) of the T and P frames (references have
none). A 1x2x2 patch embedding (zero-initialised, as is the whole adapter) makes tokens of it;
control block 0 adds its input projection of them to the backbone's embedded T+P tokens; each
control block (a Wan block with its own weights) emits a hint through its output projection. After
its feed-forward, backbone block ``layers[i]`` adds ``hint_i * strength`` to its first (T+P)
tokens: reference tokens never receive a hint.

**One departure from Wan.** LiveWorld's blocks feed the cross-attention the *un-normalised*
hidden states: the cross-attention LayerNorm (``norm3`` in Wan's code, ``norm2`` in diffusers'; an
affine LayerNorm in the 14B model) keeps its weights but is not applied, in the backbone's blocks
and in the adapter's. LiveWorld's adapter and LoRA were trained with that forward, so it is
reproduced here; the golden-fixture test compares this module with LiveWorld's own code.

Everything else is diffusers' own modules and arithmetic (float32 norms and modulation, the
attention processor and its backends), so with strength 0 the model computes exactly what
diffusers' forward computes with that one norm left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.transformers.transformer_wan import WanTransformerBlock
from diffusers.models.transformers.transformer_wan_vace import WanVACETransformerBlock
from torch import nn

__all__ = [
    "LAYERS_14B",
    "LiveWorldBlock",
    "LiveWorldTransformer",
    "Segments",
    "StateAdapter",
    "StateAdapterBlock",
    "add_hint",
    "block_forward",
    "segment_rotary",
]

LAYERS_14B = (0, 5, 10, 15, 20, 25, 30, 35)  # LiveWorld's sp_layers for Wan2.1-T2V-14B
STATE_CHANNELS = 32  # scene projection latents (16) + foreground projection latents (16)


@dataclass(frozen=True)
class Segments:
    """Latent frames of each part of the token sequence, in LiveWorld's order."""

    target: int
    preceding: int = 0
    scene_references: int = 0
    instance_references: int = 0

    def __post_init__(self) -> None:
        if (
            self.target < 1
            or min(self.preceding, self.scene_references, self.instance_references) < 0
        ):
            raise ValueError(f"bad segment sizes {self}")

    @property
    def frames(self) -> int:
        return self.target + self.preceding + self.scene_references + self.instance_references

    @property
    def conditioned(self) -> int:
        """Frames the State Adapter sees (target and preceding)."""
        return self.target + self.preceding

    def temporal_positions(self) -> list[int]:
        """The rotary time position of every latent frame."""
        t, p = self.target, self.preceding
        return [
            *range(t),
            *range(-p, 0),
            *([0] * self.scene_references),
            *([t] * self.instance_references),
        ]

    def frame_timesteps(self, timestep: torch.Tensor, batch: int) -> torch.Tensor:
        """(batch, frames) float32: ``timestep`` (a scalar or one per batch element) on the
        target frames, 0 elsewhere."""
        t = torch.as_tensor(timestep, dtype=torch.float32).reshape(-1)
        if t.numel() == 1:
            t = t.expand(batch)
        out = torch.zeros(batch, self.frames, dtype=torch.float32, device=t.device)
        out[:, : self.target] = t[:, None]
        return out


# --------------------------------------------------------------------------- shared pieces
def segment_rotary(rope, segments: Segments, height: int, width: int):
    """(cos, sin), each ``(1, frames * height * width, 1, head_dim)``: diffusers' Wan rotary
    tables with LiveWorld's segment-aware time positions. ``rope`` is the backbone's
    ``WanRotaryPosEmbed``; ``height`` x ``width`` are tokens per frame.

    Rows come from the backbone's own tables, so target frames get exactly diffusers' values; a
    negative position -p uses row p (cos is even, sin odd)."""
    positions = torch.tensor(segments.temporal_positions(), dtype=torch.int64)
    if int(positions.abs().max()) >= rope.max_seq_len or max(height, width) > rope.max_seq_len:
        raise ValueError(f"positions beyond the rotary table ({rope.max_seq_len} rows)")
    rows = positions.abs().to(rope.freqs_cos.device)
    sign = torch.where(positions < 0, -1.0, 1.0).to(rope.freqs_sin.device, rope.freqs_sin.dtype)
    split = [rope.t_dim, rope.h_dim, rope.w_dim]
    frames = len(positions)
    out = []
    for table, time_sign in ((rope.freqs_cos, None), (rope.freqs_sin, sign)):
        part_t, part_h, part_w = table.split(split, dim=1)
        part_t = part_t[rows]
        if time_sign is not None:
            part_t = part_t * time_sign[:, None]
        out.append(
            torch.cat(
                [
                    part_t.view(frames, 1, 1, -1).expand(frames, height, width, -1),
                    part_h[:height].view(1, height, 1, -1).expand(frames, height, width, -1),
                    part_w[:width].view(1, 1, width, -1).expand(frames, height, width, -1),
                ],
                dim=-1,
            ).reshape(1, frames * height * width, 1, -1)
        )
    return out[0], out[1]


def block_forward(block, hidden, context, modulation, rotary, frames: int):
    """One Wan block (diffusers' ``WanTransformerBlock`` or ``WanVACETransformerBlock`` modules)
    the way LiveWorld runs it: per-frame modulation (``modulation`` is ``(B, frames, 6, D)``) and
    cross-attention on the un-normalised hidden states."""

    def per_frame(x):
        return x.unflatten(1, (frames, -1))

    shift, scale, gate, c_shift, c_scale, c_gate = (
        block.scale_shift_table.to(modulation.device).unsqueeze(0) + modulation.float()
    ).chunk(6, dim=2)
    norm = (per_frame(block.norm1(hidden.float())) * (1 + scale) + shift).flatten(1, 2)
    attn = block.attn1(norm.type_as(hidden), None, None, rotary)
    hidden = (hidden.float() + (per_frame(attn) * gate).flatten(1, 2)).type_as(hidden)
    # LiveWorld: no LayerNorm before the cross-attention (block.norm2 is left unused)
    hidden = hidden + block.attn2(hidden, context, None, None)
    norm = (per_frame(block.norm3(hidden.float())) * (1 + c_scale) + c_shift).flatten(1, 2)
    ff = block.ffn(norm.type_as(hidden))
    return (hidden.float() + (per_frame(ff.float()) * c_gate).flatten(1, 2)).type_as(hidden)


def add_hint(hidden: torch.Tensor, hint: torch.Tensor, strength: float) -> torch.Tensor:
    """``hint * strength`` added to the first ``hint.shape[1]`` tokens (target and preceding);
    the tokens after them (references) are left as they are. In place; returns ``hidden``."""
    n = hint.shape[1]
    hidden[:, :n] = hidden[:, :n] + hint * strength
    return hidden


class LiveWorldBlock(WanTransformerBlock):
    """diffusers' Wan block run with LiveWorld's forward (:func:`block_forward`)."""

    def forward(self, hidden_states, encoder_hidden_states, modulation, rotary_emb, frames: int):
        return block_forward(
            self, hidden_states, encoder_hidden_states, modulation, rotary_emb, frames
        )


class StateAdapterBlock(WanVACETransformerBlock):
    """A State Adapter control block (VACE's modules): block 0 first adds its input projection
    of the state to the backbone's tokens; every block returns (hint, control)."""

    def forward(
        self, control, hidden_states, encoder_hidden_states, modulation, rotary_emb, frames: int
    ):
        if self.proj_in is not None:
            control = self.proj_in(control) + hidden_states
        control = block_forward(
            self, control, encoder_hidden_states, modulation, rotary_emb, frames
        )
        return self.proj_out(control), control


# --------------------------------------------------------------------------- the adapter
class StateAdapter(ModelMixin, ConfigMixin):
    """LiveWorld's State Adapter: control blocks that turn the state (scene and foreground
    projection latents of the target and preceding frames) into one hint per backbone layer in
    ``layers``.

    Parameters live under diffusers' VACE naming: ``patch_embedding`` (LiveWorld's
    ``sp_patch_embedding``), ``blocks.N`` (``sp_blocks.N``) with ``proj_in`` on block 0
    (``before_proj``) and ``proj_out`` on every block (``after_proj``).
    """

    _no_split_modules = ["StateAdapterBlock"]
    _skip_layerwise_casting_patterns = ["patch_embedding", "norm"]
    _keep_in_fp32_modules = ["scale_shift_table", "norm1", "norm2", "norm3"]

    @register_to_config
    def __init__(
        self,
        layers: tuple[int, ...] | list[int] = LAYERS_14B,
        in_channels: int = STATE_CHANNELS,
        num_attention_heads: int = 40,
        attention_head_dim: int = 128,
        ffn_dim: int = 13824,
        patch_size: tuple[int, ...] | list[int] = (1, 2, 2),
        cross_attn_norm: bool = True,
        qk_norm: str = "rms_norm_across_heads",
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        layers = [int(i) for i in layers]
        if not layers or layers[0] != 0 or layers != sorted(set(layers)):
            raise ValueError(f"State Adapter layers {layers}: expected increasing indices from 0")
        inner = num_attention_heads * attention_head_dim
        pt, ph, pw = (int(p) for p in patch_size)
        patch = (pt, ph, pw)
        self.patch_embedding = nn.Conv3d(in_channels, inner, kernel_size=patch, stride=patch)
        self.blocks = nn.ModuleList(
            [
                StateAdapterBlock(
                    inner,
                    ffn_dim,
                    num_attention_heads,
                    qk_norm,
                    cross_attn_norm,
                    eps,
                    apply_input_projection=i == 0,
                    apply_output_projection=True,
                )
                for i in range(len(layers))
            ]
        )
        # LiveWorld zero-initialises the whole adapter: untrained, it adds nothing
        with torch.no_grad():
            for p in self.parameters():
                p.zero_()

    def forward(self, state, hidden_states, encoder_hidden_states, modulation, rotary):
        """The hints, ``[B, n, D]`` each, one per entry of ``config.layers``.

        ``state`` ``(B, C, F, h, w)``; ``hidden_states`` the backbone's embedded tokens of the
        same F frames ``(B, n, D)``; ``encoder_hidden_states`` the embedded text; ``modulation``
        ``(B, F, 6, D)``; ``rotary`` the (cos, sin) of those n tokens."""
        frames = state.shape[2] // self.config.patch_size[0]
        control = self.patch_embedding(state).flatten(2).transpose(1, 2)
        hints = []
        for block in self.blocks:
            hint, control = block(
                control, hidden_states, encoder_hidden_states, modulation, rotary, frames
            )
            hints.append(hint)
        return hints


# --------------------------------------------------------------------------- the composition
class LiveWorldTransformer(nn.Module):
    """diffusers' ``WanTransformer3DModel`` (the backbone, LoRA-able through its peft support)
    plus the :class:`StateAdapter`, run with LiveWorld's forward.

    The backbone's blocks are re-classed to :class:`LiveWorldBlock` (same modules and parameter
    names, LiveWorld's forward), so that every block is called as a module and the hooks diffusers
    places on blocks (group offloading) run around it; the backbone belongs to the composition
    from then on (its own ``forward`` no longer applies)."""

    def __init__(self, backbone, adapter: StateAdapter | None = None) -> None:
        super().__init__()
        for block in backbone.blocks:
            if type(block) is WanTransformerBlock:
                block.__class__ = LiveWorldBlock
            elif not isinstance(block, LiveWorldBlock):
                raise TypeError(f"a Wan text-to-video backbone is needed, got {type(block)}")
        self.backbone = backbone
        self.adapter = adapter
        if adapter is not None:
            b, a = backbone.config, adapter.config
            inner = b.num_attention_heads * b.attention_head_dim
            if (
                a.num_attention_heads * a.attention_head_dim != inner
                or tuple(a.patch_size) != tuple(b.patch_size)
                or max(a.layers) >= b.num_layers
            ):
                raise ValueError(
                    f"the State Adapter (width {a.num_attention_heads * a.attention_head_dim}, "
                    f"layers {list(a.layers)}) does not fit the backbone (width {inner}, "
                    f"{b.num_layers} layers)"
                )
            self._hint_index = {layer: i for i, layer in enumerate(a.layers)}
        else:
            self._hint_index = {}

    @property
    def dtype(self) -> torch.dtype:
        return self.backbone.dtype

    @property
    def device(self) -> torch.device:
        return self.backbone.device

    def forward(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        segments: Segments,
        state: torch.Tensor | None = None,
        strength: float = 1.0,
    ) -> torch.Tensor:
        """The flow (velocity) prediction ``(B, C_out, F, h, w)`` for every latent frame of
        ``latents`` ``(B, 16, F, h, w)`` (frames in ``segments``' order; callers use the first
        ``segments.target``). ``timestep`` is the target frames' noise level; ``state``
        ``(B, 32, T + P, h, w)`` feeds the State Adapter (None or ``strength`` 0: no adapter)."""
        bb = self.backbone
        batch, _, frames, height, width = latents.shape
        p_t, p_h, p_w = bb.config.patch_size
        if frames != segments.frames or p_t != 1:
            raise ValueError(f"{frames} latent frames for segments {segments}")
        ph, pw = height // p_h, width // p_w

        rotary = segment_rotary(bb.rope, segments, ph, pw)
        hidden = bb.patch_embedding(latents).flatten(2).transpose(1, 2).contiguous()

        # one embedding per distinct timestep (the target's and 0), spread over the frames
        values, inverse = torch.unique(
            segments.frame_timesteps(timestep, batch).to(latents.device), return_inverse=True
        )
        temb, modulation, context, _ = bb.condition_embedder(values, encoder_hidden_states)
        temb = temb[inverse]  # (B, F, D)
        modulation = modulation[inverse].unflatten(-1, (6, -1))  # (B, F, 6, D)

        hints: list[torch.Tensor] = []
        if self.adapter is not None and state is not None and strength != 0:
            n = segments.conditioned * ph * pw
            if state.shape[2] != segments.conditioned or state.shape[-2:] != latents.shape[-2:]:
                raise ValueError(
                    f"state of shape {tuple(state.shape)} for {segments.conditioned} frames "
                    f"of {height}x{width} latents"
                )
            hints = self.adapter(
                state.to(hidden.dtype),
                hidden[:, :n],
                context,
                modulation[:, : segments.conditioned],
                (rotary[0][:, :n], rotary[1][:, :n]),
            )

        for i, block in enumerate(bb.blocks):
            hidden = block(hidden, context, modulation, rotary, frames)
            k = self._hint_index.get(i)
            if hints and k is not None:
                hidden = add_hint(hidden, hints[k], strength)

        shift, scale = (
            bb.scale_shift_table.to(temb.device).unsqueeze(0) + temb.unsqueeze(2)
        ).chunk(2, dim=2)
        normed = bb.norm_out(hidden.float()).unflatten(1, (frames, -1)) * (1 + scale) + shift
        hidden = bb.proj_out(normed.flatten(1, 2).type_as(hidden))
        hidden = hidden.reshape(batch, frames, ph, pw, p_t, p_h, p_w, -1)
        hidden = hidden.permute(0, 7, 1, 4, 2, 5, 3, 6)
        return hidden.flatten(6, 7).flatten(4, 5).flatten(2, 3)
