"""Semantic consistency (CyCADA, Hoffman et al. 2018) for the unpaired trainers: a frozen task
model trained on the labelled source domain A must predict on a translation ``G(x)`` the
labels it predicts on ``x``.

The term is the cross-entropy between the task model's logits on ``G(x)`` and its argmax
labels on ``x`` (no gradient through the labels), times ``loss.lambda_semantic``. The task
model returns logits ``NxKxHxW`` (a per-pixel segmenter) or ``NxK`` (a classifier); with
``K = 1`` the one channel is a binary logit (label ``logit > 0``, binary cross-entropy).
It takes NCHW images in [-1, 1], the generators' range, with domain A's channels; domain B
must have as many, since it also sees translations. A model trained on [0, 1] images is
wrapped before it is saved (``forward(x): return net((x + 1) / 2)``).

``loss.task_model`` is a TorchScript file (``torch.jit.script(model).save(path)``) or a
translate model file with one network (a generator file, run directory or checkpoint:
:func:`translate.models.loading.load_model`). The trainer's stage
(:meth:`translate.training.base.Trainer.prepare`) loads it, frozen and in eval mode; the
trainer keeps it out of the module tree: in no state dict, optimizer or weight average.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from translate.core.torch_file import is_torchscript, load_torchscript
from translate.models.loading import load_model, resolve_model_path
from translate.training.base import Prepared
from translate.training.config import Config
from translate.training.specs.semantic import KEY


def load_task_model(source: str) -> nn.Module:
    """The task model of ``source``, frozen and in eval mode, on the CPU; an unreadable file
    is a one-line ``ValueError`` naming ``loss.task_model``."""
    try:
        path = Path(source)
        if path.is_file() and is_torchscript(path):  # under any name (.pt, .ts, .jit)
            net = load_torchscript(path)
        else:
            loaded = load_model(resolve_model_path(source))
            if len(loaded.generators) != 1:
                raise ValueError(f"holds {', '.join(loaded.generators)}; name one network")
            (net,) = loaded.generators.values()
    except (OSError, ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(
            f"{KEY}: {source}: not a readable TorchScript or translate model file ({reason})"
        ) from None
    for parameter in net.parameters():  # a ScriptModule has no requires_grad_()
        parameter.requires_grad_(False)
    return net.eval()


class SemanticTrainer:
    """A trainer with the term: put before :class:`translate.training.base.Trainer` in its
    bases, so that its stage loads the task model."""

    @classmethod
    def prepare(cls, config: Config) -> Prepared:
        """The frozen task model as the trainer's ``task_model`` argument when the term is on;
        nothing is read when ``loss.lambda_semantic`` is 0."""
        if config.loss.lambda_semantic == 0:
            return Prepared(config)
        return Prepared(config, {"task_model": load_task_model(config.loss.task_model)})


class SemanticConsistency:
    """``loss.lambda_semantic`` times the task model's cross-entropy on translations against
    its labels on their sources. A plain object, so a trainer holding it keeps the task model
    out of its module tree (and ``train()`` leaves it in eval mode)."""

    def __init__(self, task_model: nn.Module, weight: float) -> None:
        self.net, self.weight = task_model, weight

    def __call__(self, source: torch.Tensor, translated: torch.Tensor) -> torch.Tensor:
        net = self.net.to(translated.device)  # the engine moves only the module tree
        with torch.no_grad():
            target = net(source).float()
        logits = net(translated).float()
        if logits.dim() not in (2, 4) or logits.shape != target.shape:
            raise ValueError(
                f"{KEY}: the task model returned {tuple(logits.shape)} for a translation and "
                f"{tuple(target.shape)} for its source; it must return logits NxK or NxKxHxW"
            )
        if logits.shape[1] == 1:
            loss = F.binary_cross_entropy_with_logits(logits, (target > 0).float())
        else:
            loss = F.cross_entropy(logits, target.argmax(1))
        return loss * self.weight


def semantic_term(config: Config, task_model: nn.Module | None) -> SemanticConsistency | None:
    """The term a trainer adds to its A->B generator's loss, or None when it is off."""
    if config.loss.lambda_semantic == 0:
        return None
    assert task_model is not None, "SemanticTrainer.prepare loads the task model"
    return SemanticConsistency(task_model, config.loss.lambda_semantic)
