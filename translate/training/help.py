"""Help text that names the trainers, from their specs (:mod:`translate.training.specs`),
which list every trainer and what it trains on without importing torch, so that
``translate --help`` answers at once."""

from __future__ import annotations

from translate.training.specs import TRAINERS


def trainers() -> dict[str, str]:
    """Every name registered in ``TRAINERS`` (``config.model``), sorted, and the data its
    spec declares (``paired`` or ``unpaired``)."""
    return {name: TRAINERS.spec(name).data for name in TRAINERS.names()}


def trainers_by_data() -> str:
    """``Trainers by data: paired pix2pix, ...; unpaired cut, ...``: an epilog for the
    commands whose models or datasets come from any trainer."""
    kinds = sorted(set(trainers().values()))
    groups = [
        f"{kind} {', '.join(n for n, k in trainers().items() if k == kind)}" for kind in kinds
    ]
    return f"Trainers by data: {'; '.join(groups)}."


def trainers_line() -> str:
    """``cut, cyclegan, ...``: the trainers as a help text lists them."""
    return ", ".join(TRAINERS.names())
