"""A data order that can be resumed mid-epoch and does not depend on the worker count.

The sampler yields ``(epoch, index)``; :class:`SeededItems` seeds every random augmentation
from ``(seed, epoch, index)``. Item ``k`` of epoch ``e`` is therefore the same image with the
same crop and flip whether it is read by worker 0 or 3, and whether the run was resumed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


class ResumableSampler(Sampler[tuple[int, int]]):
    """A seeded permutation per epoch, sharded over ``world_size`` ranks like
    ``DistributedSampler`` (padded so every rank gets as many items), that can skip the
    batches a resumed run has already trained on."""

    def __init__(
        self,
        length: int,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.length, self.batch_size, self.seed, self.shuffle = length, batch_size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.per_rank = math.ceil(length / world_size)
        self.epoch = 0
        self.skip_batches = 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip_batches = epoch, skip_batches

    def batches_per_epoch(self) -> int:
        return math.ceil(self.per_rank / self.batch_size)

    def __len__(self) -> int:
        return max(0, self.per_rank - self.skip_batches * self.batch_size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.length, generator=gen).tolist()
        else:
            order = list(range(self.length))
        total = self.per_rank * self.world_size
        order = (order * math.ceil(total / self.length))[:total]
        mine = order[self.rank : total : self.world_size]
        for index in mine[self.skip_batches * self.batch_size :]:
            yield self.epoch, index


class SeededItems(Dataset):
    """Wraps a dataset of this package so item ``(epoch, index)`` is augmented reproducibly."""

    def __init__(self, dataset: Any, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        seed = int(np.random.SeedSequence([self.seed, epoch, index]).generate_state(1)[0])
        random.seed(seed)  # UnpairedFolder's random partner
        # albumentations keeps its own generators: one pair per Compose, with its own seed
        # (set_random_seed would give every transform the same one, tying the flip to the
        # crop position).
        for offset, name in enumerate(("transform", "input_augment")):
            compose = getattr(self.dataset, name, None)
            if compose is not None:
                rng, py_rng = np.random.default_rng(seed + offset), random.Random(seed + offset)
                compose.set_random_state(rng, py_rng)
        return self.dataset[index]
