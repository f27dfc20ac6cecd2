"""The training data as torch sees it: cached latents and text embeddings, in a deterministic
order per epoch (so a resumed run sees the batches an uninterrupted one would)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, Sampler


class LatentDataset(Dataset):
    """Item i: {"latents": (C, f, h, w) float32, "text": (max_len, D) float32 zero-padded like the
    pipelines' prompt embeddings, "index": i}. Latents are read from the cache on each access."""

    def __init__(self, items, text_embeds: dict, max_sequence_length: int):
        self.items = list(items)
        self.text_embeds = text_embeds
        self.max_len = max_sequence_length

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        from safetensors.torch import load_file

        item = self.items[i]
        latents = load_file(str(item.latents_path))["latents"]
        return {
            "latents": latents,
            "text": pad_text(self.text_embeds[item.caption], self.max_len),
            "index": i,
        }


def pad_text(embeds: torch.Tensor, max_len: int) -> torch.Tensor:
    """(L, D) -> (max_len, D) with zero rows after the tokens, as the Wan pipelines pad."""
    embeds = embeds[:max_len]
    if embeds.shape[0] == max_len:
        return embeds
    return torch.cat([embeds, embeds.new_zeros(max_len - embeds.shape[0], embeds.shape[1])])


class EpochSampler(Sampler[int]):
    """A fresh permutation each epoch, a pure function of (seed, epoch)."""

    def __init__(self, n: int, seed: int):
        self.n = n
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())


def infinite_batches(loader, start_batch: int):
    """Batches forever, epoch after epoch, starting at batch ``start_batch`` counted from the
    first batch of epoch 0 (earlier batches of the first epoch are skipped)."""
    per_epoch = len(loader)
    epoch, skip = divmod(start_batch, per_epoch)
    while True:
        if hasattr(loader, "set_epoch"):  # accelerate's loaders pass it on to the sampler
            loader.set_epoch(epoch)
        else:
            loader.sampler.set_epoch(epoch)
        for i, batch in enumerate(loader):
            if i < skip:
                continue
            yield batch
        epoch += 1
        skip = 0
