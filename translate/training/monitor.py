"""Mode-collapse and balance checks on a fixed validation batch.

``monitor_batch`` measures; ``monitor_warnings`` turns the measures into sentences for the
log and the progress bar. The thresholds are module constants so tests and users can see
what "collapsed" means.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from translate.core.metrics import diversity
from translate.training.losses import Prediction, _logits
from translate.training.objectives import OBJECTIVES

# Outputs less than a fifth as varied as the real targets: the generator ignores its input.
COLLAPSE_RATIO = 0.2
# An untrained generator's outputs are near-uniform too, so a low ratio only counts as
# collapse once it has lasted this many evaluations, or right away when earlier outputs
# were healthy and diversity fell.
COLLAPSE_GRACE = 3
# D right on more than 95 % of real and fake patches: G's adversarial gradient is vanishing.
OVERPOWER_ACCURACY = 0.95
# D calls fewer than 5 % of fake patches fake: it has stopped teaching G anything.
FOOLED_ACCURACY = 0.05

# No warnings before this step: in the first hundreds of steps G and D trade places and an
# untrained G's outputs are uniform, so "fools the discriminator" or "collapse" would only
# describe the start (every short run warned at step 2). Stats are still logged.
WARMUP_STEPS = 500

# Below this the real targets are (nearly) identical and a diversity ratio means nothing.
_MIN_DIVERSITY = 1e-8


def d_accuracy(prediction: Prediction, gan_mode: str, real: bool) -> float:
    """Fraction of the discriminator's patch outputs on the correct side of the threshold
    of the objective registered as ``gan_mode``.

    ``prediction`` is what D returns: a logits tensor, or (multiscale) per-scale feature
    lists ending with the logits; scales are averaged, as the losses do.
    """
    threshold = OBJECTIVES.get(gan_mode).threshold
    per_scale = []
    for logits in _logits(prediction):
        above = logits.detach().float() > threshold
        per_scale.append((above if real else ~above).float().mean())
    return torch.stack(per_scale).mean().item()


def diversity_ratio(fake: torch.Tensor, real: torch.Tensor) -> float:
    """Diversity of the generated batch over that of the real targets (1.0 = as varied)."""
    real_div = diversity(real)
    if real_div < _MIN_DIVERSITY:
        return 1.0
    return diversity(fake) / real_div


@torch.no_grad()
def monitor_batch(
    fake: torch.Tensor,
    real: torch.Tensor,
    d_real: Prediction | None,
    d_fake: Prediction | None,
    gan_mode: str,
) -> dict[str, float]:
    """``diversity_ratio``, ``d_acc_real`` and ``d_acc_fake`` for one batch.

    ``fake`` and ``real`` are NCHW in [-1, 1]; ``diversity_ratio`` is left out when the
    batch holds a single image (diversity needs two), the accuracies when there is no
    discriminator (``d_real``/``d_fake`` None: an SR run's L1-only stage).
    """
    stats = {}
    if d_real is not None and d_fake is not None:
        stats["d_acc_real"] = d_accuracy(d_real, gan_mode, real=True)
        stats["d_acc_fake"] = d_accuracy(d_fake, gan_mode, real=False)
    if fake.shape[0] >= 2 and real.shape[0] >= 2:
        stats["diversity_ratio"] = diversity_ratio(fake, real)
    return stats


def monitor_warnings(
    stats: dict[str, float],
    history: Sequence[float] = (),
    collapse_ratio: float = COLLAPSE_RATIO,
    step: int | None = None,
) -> list[str]:
    """Human-readable warnings for the stats of :func:`monitor_batch`; empty when healthy
    or, given the training ``step``, before ``WARMUP_STEPS``.

    - mode collapse: ``diversity_ratio < collapse_ratio``, when ``history`` (the ratios of
      the earlier evaluations, oldest first) shows it was healthy before or has been low for
      ``COLLAPSE_GRACE`` evaluations in a row;
    - D overpowering G: ``d_acc_real`` and ``d_acc_fake`` both above ``OVERPOWER_ACCURACY``;
    - G fooling D: ``d_acc_fake < FOOLED_ACCURACY``.
    Missing keys are skipped.
    """
    if step is not None and step < WARMUP_STEPS:
        return []
    out = []
    ratio = stats.get("diversity_ratio")
    if ratio is not None and ratio < collapse_ratio:
        recent = [*history, ratio][-COLLAPSE_GRACE:]
        fell = any(r >= collapse_ratio for r in history)
        stuck = len(recent) >= COLLAPSE_GRACE and max(recent) < collapse_ratio
        if fell or stuck:
            out.append(
                f"mode collapse: outputs are {ratio:.2f}x as diverse as the real targets "
                f"(below {collapse_ratio:g}) "
                + ("after being more varied before" if fell else f"for {len(recent)} evaluations")
            )
    acc_real, acc_fake = stats.get("d_acc_real"), stats.get("d_acc_fake")
    if (
        acc_real is not None
        and acc_fake is not None
        and min(acc_real, acc_fake) > OVERPOWER_ACCURACY
    ):
        out.append(
            f"discriminator overpowers the generator: it is right on {acc_real:.0%} of real and "
            f"{acc_fake:.0%} of fake patches (if the generator's other loss terms outweigh its GAN "
            "term, lower them, e.g. CUT's loss.lambda_nce; a lower optim.lr_d did not help "
            "CUT, and DiffAugment cost it its content: docs/tips.md)"
        )
    if acc_fake is not None and acc_fake < FOOLED_ACCURACY:
        out.append(
            f"generator fools the discriminator: it calls only {acc_fake:.0%} of fake patches "
            f"fake (try a higher D learning rate or more D steps)"
        )
    return out
