"""This process's place: its ``torchrun`` ranks and the CPUs it may run on. No torch here,
so that a command can tell before importing it (a config error is printed by rank 0 alone)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Ranks:
    """This process's place under ``torchrun``; ``Ranks()`` outside it."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Ranks:
        """``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` as torchrun sets them."""
        names = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
        try:
            rank, world, local = (int(environ.get(n, d)) for n, d in zip(names, "010", strict=True))
        except ValueError as exc:
            raise ValueError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers ({exc})") from exc
        if world < 1 or not 0 <= rank < world or not 0 <= local < world:
            raise ValueError(f"RANK={rank}/LOCAL_RANK={local} does not fit WORLD_SIZE={world}")
        return cls(rank, world, local)


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity, as torch's DataLoader counts them)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
