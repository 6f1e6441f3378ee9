"""The training engine: devices, precision, data, the epoch loop, evaluation and checkpoints.

Written once for every trainer: it reads a trainer's declarations (its spec and the methods
of ``Trainer``), never its name, so a new trainer is a spec in ``translate.training.specs``
and a class in ``translate.training.models``, nothing here.

:class:`Engine` is built in this order, each part by one function or class below: the
trainer's stage (``Trainer.prepare``), the :class:`Runtime`, the datasets, the model
(:func:`build_model`), the optimizers and the loader of the loop (:func:`build_optimizers`,
:func:`build_loader`), the :class:`Evaluator` and the run directory's
:class:`~translate.training.checkpoint.Checkpointer`. :meth:`Engine.fit` is the loop.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
from torch.utils.data import DataLoader, Dataset, default_collate
from tqdm import tqdm

from translate.core.process import Ranks
from translate.core.run_dir import RunDir
from translate.core.runtime import Precision, resolve_device, resolve_precision
from translate.data.layout import HOLDOUT
from translate.data.transforms import UNCROPPED_MODES
from translate.models.model_file import CHECKPOINT_KEY, InputSpec, checkpoint_entry, save_generators
from translate.networks.eval_mode import EvalMode, has_batch_norm, set_eval_mode
from translate.training.base import Prepared, Stepper, Trainer
from translate.training.checkpoint import Checkpointer, rng_state, set_rng_state
from translate.training.config import Config, TrainConfig
from translate.training.datasets import build_datasets
from translate.training.distributed import (
    any_rank,
    broadcast_weights,
    elastic_restart,
    init_distributed,
    mean_over_ranks,
    sync_batch_norm,
)
from translate.training.ema import WeightAverage
from translate.training.monitor import monitor_batch, monitor_warnings
from translate.training.report import RunReport
from translate.training.sampling import ResumableSampler, SeededItems
from translate.training.schedules import build_scheduler, decay_start
from translate.training.specs import TRAINERS

VAL_CHUNK = 8  # validation images per forward pass (README: stopping); the first is the sample grid
# Fewer validation images than this get a warning at the start: their mean score swings
# with every image (one flat 64 px crop scored 54 dB PSNR-Y).
FEW_VAL_IMAGES = 8


@dataclass(frozen=True)
class Runtime:
    """Where and how the run executes: its ranks, device, precision, CPU threads and memory
    format."""

    ranks: Ranks
    device: torch.device
    precision: Precision
    threads: int  # torch's intra-op threads
    channels_last: bool  # CUDA only: the CPU's convolutions are slower in it

    @classmethod
    def resolve(cls, train: TrainConfig) -> Runtime:
        """Join torchrun's process group (if any), then pick the device, precision and
        threads."""
        ranks = init_distributed(train.device, train.dist_timeout)
        # auto trains on CUDA when there is a GPU, else on the CPU (not MPS)
        try:
            device = resolve_device(train.device, use="train")
        except ValueError as exc:
            raise ValueError(f"config key 'train.device': {exc}") from exc
        if device.type == "cuda":
            if ranks.world_size > 1:  # under torchrun each rank takes its own GPU
                device = torch.device("cuda", ranks.local_rank)
            torch.cuda.set_device(device)
        precision = resolve_precision(
            train.precision, device, use="train", key="config key 'train.precision'"
        )
        if train.threads is not None:
            torch.set_num_threads(train.threads)
        channels_last = train.channels_last and device.type == "cuda"
        return cls(ranks, device, precision, torch.get_num_threads(), channels_last)


def check_sizes(config: Config, model: Trainer, sample: dict[str, Any]) -> None:
    """Refuse image sizes the generator cannot take (U-Net depth vs crop size)."""
    multiple = max(getattr(g, "size_multiple", 1) for _, g in model.generators().values())
    pre, name = config.data.preprocess, config.generator.name
    if pre.mode not in UNCROPPED_MODES and pre.crop_size % multiple:
        raise ValueError(
            f"config key 'data.preprocess.crop_size': {pre.crop_size} is not a multiple of "
            f"{multiple}, which generator {name!r} needs (a U-Net needs 2**num_downs); "
            f"use a crop size of {max(multiple, pre.crop_size // multiple * multiple)} "
            "or a shallower generator"
        )
    if pre.mode in UNCROPPED_MODES and pre.size_multiple % multiple:
        raise ValueError(
            f"config key 'data.preprocess.size_multiple': {pre.size_multiple} is not a "
            f"multiple of {multiple}, which generator {name!r} needs"
        )
    image = next(v for v in sample.values() if isinstance(v, torch.Tensor))
    if image.shape[-1] % multiple or image.shape[-2] % multiple:
        raise ValueError(
            f"{config.data.source()}: images come out {tuple(image.shape[-2:])} but generator "
            f"{name!r} needs sides divisible by {multiple}; set data.preprocess.size_multiple "
            f"to {multiple}"
        )


class LossMeans:
    """Sums and counts of each step loss, kept as tensors so steps never wait for the device."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for key, value in losses.items():
            self.sums[key] = self.sums.get(key, 0) + value
            self.counts[key] = self.counts.get(key, 0) + 1

    def means(self) -> dict[str, float]:
        return {k: (v / self.counts[k]).item() for k, v in self.sums.items()}

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        return self.sums, self.counts

    def load_state_dict(
        self, state: tuple[dict[str, torch.Tensor], dict[str, int]], device: torch.device
    ) -> None:
        sums, self.counts = state
        self.sums = {k: v.to(device) for k, v in sums.items()}


class StepClock:
    """The wall-clock time of the training steps, loading their batches included, for
    metrics.jsonl: each row gets ``time`` (seconds since the epoch) and ``step_seconds``,
    the mean seconds per step since the previous row. Evaluations, checkpoints and
    snapshots are left out (the loop calls :meth:`resume` after them), so rows after an
    evaluation show the steps' speed, not the evaluation's."""

    def __init__(self) -> None:
        self.seconds = 0.0  # spent in steps since the last read
        self.steps = 0
        self.last = math.nan  # the last mean, for a row with no new steps (an evaluation's)
        self.mark = time.perf_counter()

    def resume(self) -> None:
        """Start counting from now: the time since the last step was not spent in one. (The
        loss logs are counted: on a GPU, reading a loss waits for the steps queued before.)"""
        self.mark = time.perf_counter()

    def stepped(self) -> None:
        now = time.perf_counter()
        self.seconds += now - self.mark
        self.steps += 1
        self.mark = now

    def read(self) -> dict[str, float]:
        """``time`` and ``step_seconds`` for a metrics.jsonl row; starts a new window."""
        if self.steps:
            self.last = self.seconds / self.steps
            self.seconds, self.steps = 0.0, 0
        return {"time": time.time(), "step_seconds": self.last}


class RunTime:
    """The run's wall time, for ``train.max_minutes``: the seconds since this attempt's
    :meth:`Engine.fit` began plus those of the attempts it continues (the checkpoint keeps
    them), so a resumed run stops where one uninterrupted run would. Evaluations and
    checkpoint writes count: the limit is the time a user has, not the steps' share of it."""

    def __init__(self, max_minutes: float | None, before: float = 0.0) -> None:
        self.limit = None if max_minutes is None else max_minutes * 60.0
        self.before = before  # seconds of the earlier attempts
        self.mark: float | None = None  # when this attempt's loop began

    def start(self) -> None:
        self.mark = time.monotonic()

    def seconds(self) -> float:
        now = 0.0 if self.mark is None else time.monotonic() - self.mark
        return self.before + now

    def passed(self) -> bool:
        return self.limit is not None and self.seconds() >= self.limit


class EvaluationStopped(Exception):
    """A stop signal arrived during validation: the run saves its checkpoint instead."""


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag the loop checks after each step, so the run saves a
    checkpoint and exits cleanly. A second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                break
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _ignore_stop_signals(worker_id: int) -> None:
    """Loader workers leave SIGINT/SIGTERM to the main process. A terminal's Ctrl-C and
    schedulers such as Slurm signal every process of the job; a worker that died of it
    would fail the main process's next batch before it could save the checkpoint."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def _to_device(batch: dict[str, Any], device: torch.device, channels_last: bool) -> dict[str, Any]:
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device, non_blocking=True)
            if channels_last and value.ndim == 4:  # images, not per-item values (SR's seeds)
                value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


# --- the parts an Engine is built from ----------------------------------------------------


def build_model(
    trainer: type[Trainer], prepared: Prepared, sample: dict[str, Any], runtime: Runtime
) -> Trainer:
    """The trainer from its stage's config and inputs, checked against one validation item,
    its data-sized networks built from it, and placed on the runtime's device(s)."""
    config = prepared.config
    model = trainer(config, **prepared.inputs)
    check_sizes(config, model, sample)
    model.initialize(default_collate([sample]))
    ranks = runtime.ranks
    model = sync_batch_norm(model, runtime.device, ranks.world_size)
    model.to(runtime.device)
    if runtime.channels_last:
        model.to(memory_format=torch.channels_last)
    broadcast_weights(model, ranks.world_size)
    if config.train.compile:
        for net in model.children():
            if any(True for _ in net.parameters()):
                net.compile()  # in place: state dict keys stay the same
    return model


def build_optimizers(
    config: Config, model: Trainer, runtime: Runtime
) -> tuple[Stepper, dict[str, LRScheduler | ReduceLROnPlateau]]:
    """One Adam per entry of the trainer's ``optimizers()``, the Stepper that updates them
    with the run's precision, clipping and ranks, and each one's learning-rate scheduler."""
    optim = config.optim
    # The fused kernel updates every tensor in one pass: ~5x faster than the per-tensor
    # loop on the CPU too (0.03 s vs 0.17 s per unet_256 update on one CPU thread).
    fused = runtime.device.type in ("cuda", "cpu")
    optimizers = {
        name: torch.optim.Adam(params, lr=lr, betas=(optim.beta1, optim.beta2), fused=fused or None)
        for name, (params, lr) in model.optimizers().items()
    }
    stepper = Stepper(
        optimizers, runtime.device, runtime.precision, optim.grad_clip,
        runtime.ranks.world_size, overlap=config.train.overlap_grad_reduce,
    )  # fmt: skip
    schedulers = {name: build_scheduler(o, config.schedule) for name, o in optimizers.items()}
    return stepper, schedulers


def build_loader(
    config: Config, train_set: Dataset, runtime: Runtime
) -> tuple[ResumableSampler, DataLoader]:
    """The training batches: this rank's share of a seeded order that resumes mid-epoch."""
    train, workers = config.train, config.data.num_workers
    sampler = ResumableSampler(
        len(train_set), train.batch_size, train.seed,
        rank=runtime.ranks.rank, world_size=runtime.ranks.world_size,
    )  # fmt: skip
    loader = DataLoader(
        SeededItems(train_set, train.seed),
        batch_size=train.batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=runtime.device.type == "cuda",
        persistent_workers=workers > 0,
        worker_init_fn=_ignore_stop_signals,
        # its own generator, so creating an iterator mid-epoch (resume) leaves the
        # global RNG alone
        generator=torch.Generator(),
    )
    return sampler, loader


@dataclass
class Evaluation:
    """What one pass over the validation images found."""

    samples: dict[str, torch.Tensor]  # the first batch's grid columns
    values: dict[str, float]  # val_* scores and the trainer's validation values
    monitor: dict[str, float]  # diversity and D's accuracies on the first batch
    warnings: list[str]
    improved: bool  # the trainer's best_metric is the best so far
    baseline: dict[str, float]  # the trainer's baseline's scores, in the first evaluation only


class Evaluator:
    """The run's fixed validation images, scored through the trainer's ``validate``, and
    what the evaluations so far found: the best values, the better eval mode for the
    generator file, the monitor's diversity history, the last scores."""

    def __init__(self, config: Config, model: Trainer, val_set: Dataset, runtime: Runtime) -> None:
        self.config, self.model, self.val_set, self.runtime = config, model, val_set, runtime
        # without ground truth to score, validation is the sample grid and monitoring only
        scored = model.validation_scores() is not None
        cap = config.data.val_size if scored else min(config.data.val_size, VAL_CHUNK)
        self.val_images = min(len(val_set), cap)
        self.best: dict[str, float] = {}
        self.baseline: dict[str, float] = {}  # the trainer's baseline's validation scores
        self.val_scores: dict[str, float] = {}  # the last evaluation's, beside the bar's losses
        self.eval_mode = EvalMode()  # what the last validation scored better
        self.diversity_history: list[float] = []  # earlier evaluations' ratios, for collapse
        if runtime.ranks.main:
            self._announce(scored)

    def _announce(self, scored: bool) -> None:
        """Say once which images validation uses and whether it scores them, with a warning
        when they are too few for their scores to mean much."""
        data = self.config.data
        split = data.val_split
        where = {
            HOLDOUT: "held out of the training files",
            "train": "the training images: nothing held out",
        }.get(split, split)
        what = "images" if scored else "images (samples and monitoring; no targets to score)"
        tqdm.write(f"validation: {self.val_images} {what} ({where})", file=sys.stderr)
        if self.val_images >= FEW_VAL_IMAGES or data.single_image is not None:
            return  # (one image is all that single-image training has to show)
        crops = data.preprocess.mode not in UNCROPPED_MODES
        each = f", one centre crop of {data.preprocess.crop_size} px each" if crops else ""
        if self.val_images < len(self.val_set):
            fix = f"raise data.val_size (now {data.val_size})"
        elif split == HOLDOUT:
            fix = f"add a val/ folder of images under {data.source()}"
        elif split == "train":
            fix = f"add training images under {data.source()}"
        else:
            fix = f"add images to the {split!r} split of {data.source()}"
        tqdm.write(
            f"warning: validation scores only {self.val_images} image"
            f"{'' if self.val_images == 1 else 's'}{each} (data.val_split {split!r}): its "
            f"scores swing with every image; {fix} to have at least {FEW_VAL_IMAGES}",
            file=sys.stderr,
        )

    def batches(self, stop: StopRequest | None = None) -> Iterator[dict[str, Any]]:
        """The validation images in chunks, read afresh each time (200 images of 256 px
        would hold 300 MB of device memory for the whole run)."""
        for start in range(0, self.val_images, VAL_CHUNK):
            # 200 validation images can outlast the 30 s a scheduler allows after SIGTERM
            if stop is not None and stop.signal is not None:
                raise EvaluationStopped
            end = min(start + VAL_CHUNK, self.val_images)
            batch = default_collate([self.val_set[i] for i in range(start, end)])
            yield _to_device(batch, self.runtime.device, self.runtime.channels_last)

    @torch.no_grad()
    def run(self, step: int, epoch: int, stop: StopRequest | None = None) -> Evaluation:
        """Samples, paired scores, the trainer's validation values and monitoring of the
        model as it is now; ``EvaluationStopped`` when ``stop`` is signalled."""
        model = self.model
        model.eval()
        try:
            paired = model.validation_scores()
            # the trainer's baseline is scored once, in the run's first evaluation
            baseline = model.validation_scores() if model.baseline and not self.baseline else None
            sums: dict[str, float] = {}  # the trainer's own validation values, times images
            images = 0
            for i, batch in enumerate(self.batches(stop)):
                with self.runtime.precision.autocast():
                    result = model.validate(batch)
                if i == 0:
                    samples = result.images
                    monitor = monitor_batch(
                        result.fake, result.real, result.d_real, result.d_fake,
                        self.config.loss.gan_mode,
                    )  # fmt: skip
                if paired is not None:
                    paired.add(result.fake, result.real, result.labels)
                if baseline is not None and result.baseline is not None:
                    baseline.add(result.baseline, result.real)
                n = result.fake.shape[0]
                for key, value in result.losses.items():
                    sums[key] = sums.get(key, 0.0) + value * n
                images += n
            values = {f"val_{k.upper()}": v for k, v in paired.result().items()} if paired else {}
            # scores or, without targets, the monitors: on the console after each evaluation,
            # a record of how the run goes that the bar's postfix alone would overwrite
            self.val_scores = dict(values) if paired is not None else dict(monitor)
            first_baseline = {}
            if baseline is not None and baseline.count:
                self.baseline = first_baseline = {
                    f"val_{k.upper()}": v for k, v in baseline.result().items()
                }
                values.update({f"baseline_{k}": v for k, v in self.baseline.items()})
            values.update({f"val_{k}": total / images for k, total in sums.items()})
            if paired is not None:
                values.update(self._choose_eval_mode(values["val_L1"], stop))
        finally:
            model.train()
        warnings = monitor_warnings(monitor, self.diversity_history, step=step)
        if "diversity_ratio" in monitor:
            self.diversity_history.append(monitor["diversity_ratio"])
        # the comparison in the direction that is better: negated where higher is
        sign = -1 if model.best_higher else 1
        best = self.best.get(model.best_metric, sign * math.inf)
        if model.best_metric not in values:
            raise ValueError(
                f"trainer {self.config.model!r}: its best_metric {model.best_metric!r} is not "
                f"among the validation values ({', '.join(values) or 'none'})"
            )
        improved = sign * values[model.best_metric] < sign * best
        if improved:
            self.best = {**values, "step": step, "epoch": epoch}
        return Evaluation(samples, values, monitor, warnings, improved, first_baseline)

    def _choose_eval_mode(self, running_l1: float, stop: StopRequest | None) -> dict[str, float]:
        """Score the validation set again as the reference tests (each image's batch norm
        statistics, dropout on) and keep the better mode for the generator file."""
        nets = [net for _, net in self.model.generators().values()]
        if not any(has_batch_norm(net) for net in nets):
            return {}
        batch_mode = EvalMode("batch", dropout=True)
        undo = [set_eval_mode(net, batch_mode) for net in nets]
        paired = self.model.validation_scores()
        assert paired is not None  # called for trainers that score validation only
        device = self.runtime.device
        cuda = [device] if device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=cuda):  # dropout leaves training's RNG alone
                for batch in self.batches(stop):
                    with self.runtime.precision.autocast():
                        result = self.model.validate(batch)
                    paired.add(result.fake, result.real, result.labels)
        except ValueError:  # a norm layer that sees 1x1 maps has no per-image statistics
            self.eval_mode = EvalMode()
            return {}
        finally:
            for restore in undo:
                restore()
        batch_l1 = paired.result()["l1"]
        self.eval_mode = batch_mode if batch_l1 < running_l1 else EvalMode()
        return {"val_L1_batch_stats": batch_l1}

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "baseline": self.baseline,
            "diversity_history": self.diversity_history,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.diversity_history = state["best"], state["diversity_history"]
        self.baseline = state["baseline"]


class Engine:
    """Builds everything from a config, checks it before step 1, and trains with :meth:`fit`.

    ``resume=True`` continues from the newest ``checkpoints/state_<step>.pt`` in ``run_dir``;
    so does a worker group that torchrun restarted (``--max-restarts``) once the run has a
    checkpoint.
    """

    def __init__(
        self, config: Config, run_dir: str | os.PathLike[str], resume: bool = False,
        progress: bool = True,
    ) -> None:  # fmt: skip
        self.run_dir, self.progress = Path(run_dir), progress
        self.run = RunDir(run_dir)  # where each of the run's files goes
        # under torchrun the group may be a restarted one, which only the ranks can tell
        elastic = not resume and Ranks.from_env().world_size > 1
        self.checkpoints = Checkpointer(self.run_dir, resume or elastic)  # one run there
        # The trainer's own stage first: a bad auxiliary file fails before any setup.
        trainer = TRAINERS.get(config.model)
        prepared = trainer.prepare(config)
        self.config = config = prepared.config
        self.runtime = runtime = Runtime.resolve(config.train)
        # auto and an unset thread count replaced by what the run runs with, so config.yaml
        # says it and a resumed run continues with the same
        config.train.device, config.train.precision = str(runtime.device), runtime.precision.name
        config.train.threads = runtime.threads
        self.ranks, self.device = runtime.ranks, runtime.device
        if elastic:
            resume = self._restarted()
        random.seed(config.train.seed)
        np.random.seed(config.train.seed)
        torch.manual_seed(config.train.seed)

        self.train_set, val_set, config.data.val_split = build_datasets(config)
        self.model = build_model(trainer, prepared, val_set[0], runtime)
        generators = {name: net for name, (_, net) in self.model.generators().items()}
        self.ema = WeightAverage(generators, config.train.ema) if config.train.ema else None
        self.evaluator = Evaluator(config, self.model, val_set, runtime)
        self.stepper, self.schedulers = build_optimizers(config, self.model, runtime)
        self.sampler, self.loader = build_loader(config, self.train_set, runtime)

        # the loop's state
        self.step = self.epoch = self.epoch_batches = 0
        self.stopped_by: int | None = None  # the signal that stopped fit()
        self.stop = StopRequest()  # listens while fit() runs
        self.clock = StepClock()  # seconds per step, for metrics.jsonl
        self.time = RunTime(config.train.max_minutes)  # for train.max_minutes
        self.timed_out = False  # whether train.max_minutes ended fit()
        self.log_window = LossMeans()  # since the last log
        self.epoch_window = LossMeans()  # this epoch, for the plateau policy
        if resume:
            self.restore(*self.checkpoints.newest(self.ranks.main))
        self.report = RunReport(
            self.run_dir, enabled=self.ranks.main, tensorboard=config.log.tensorboard,
            resume_step=self.step if resume else None,
        )  # fmt: skip
        if self.ranks.main:
            self.checkpoints.write_config(config)

    def _restarted(self) -> bool:
        """Whether torchrun restarted this worker group (``--max-restarts``) and the run has
        a checkpoint to continue from; a new run's directory must hold none. Only the agent
        that lost a worker counts the restart (the others restart theirs without counting
        it), so the ranks decide together."""
        restart = any_rank(elastic_restart() > 0, self.device, self.ranks.world_size)
        if not restart:
            self.checkpoints.refuse_existing()
            return False
        if not self.run.states():  # lost before the first checkpoint: afresh
            return False
        if self.ranks.main:
            tqdm.write(
                f"torchrun restarted the workers: resuming {self.run_dir} from its newest "
                "checkpoint", file=sys.stderr,
            )  # fmt: skip
        return True

    @property
    def epoch_number(self) -> int:
        """The 1-based epoch the latest step belongs to, as the progress bar counts."""
        return self.epoch + 1 if self.epoch_batches else self.epoch

    @property
    def total_epochs(self) -> int:
        return self.config.schedule.epochs + self.config.schedule.decay_epochs

    # --- the loop -----------------------------------------------------------------------

    def fit(self) -> dict[str, Any]:
        """Train to the end of the schedule (or ``train.max_steps``, or the step during which
        ``train.max_minutes`` passed: ``timed_out``); returns the training summary stored in
        the generator file.

        SIGINT/SIGTERM stop after the current step: the checkpoint is written at once and the
        final evaluation skipped (preemptible machines often allow 30 s before SIGKILL);
        ``stopped_by`` then holds the signal number.
        """
        with self.stop:
            self._warn_decay_never_starts()
            # the run's one progress bar: steps to the end of the run, with tqdm's estimate
            # of the time left (the epoch is in its description)
            steps = self.total_epochs * self.sampler.batches_per_epoch()
            bar = tqdm(
                desc=self._epoch_desc(), initial=self.step, unit="step", dynamic_ncols=True,
                total=min(steps, self.config.train.max_steps or steps),
                disable=not (self.progress and self.ranks.main),
            )  # fmt: skip
            self.time.start()
            try:
                while (
                    self.epoch < self.total_epochs
                    and not self._at_max_steps()
                    and not self._out_of_time()
                ):
                    if not self._run_epoch(bar):
                        break
                    self._end_epoch()
            finally:
                bar.close()
                self._shut_down_workers()
            self.stopped_by = self.stopped_by or self.stop.signal
            self.save_checkpoint()  # with the handlers still set: a signal cannot cut it short
        if self.stopped_by is None and self.step % self.config.log.eval_every:
            self.evaluate()  # else the last step was just evaluated
        self.report.close()
        return self.summary()

    def _shut_down_workers(self) -> None:
        """Stop the loader's persistent workers as the loop ends, however it ends. They ignore
        SIGTERM (see ``_ignore_stop_signals``), so workers still alive when Python exits (a
        traceback or a caller still holding this engine) would make multiprocessing's exit
        handler wait for them forever. torch has no public call for this."""
        iterator = self.loader._iterator
        if iterator is not None:
            self.loader._iterator = None
            iterator._shutdown_workers()

    def _at_max_steps(self) -> bool:
        return self.config.train.max_steps is not None and self.step >= self.config.train.max_steps

    def _out_of_time(self) -> bool:
        """Whether ``train.max_minutes`` has passed, on any rank: their clocks differ by a
        little, and every rank must stop after the same step."""
        if self.time.limit is not None:
            self.timed_out = any_rank(self.time.passed(), self.device, self.ranks.world_size)
        return self.timed_out

    def _warn_decay_never_starts(self) -> None:
        """A run that ``train.max_steps`` stops before the learning rate decays trains at the
        full rate throughout, which the schedule's numbers alone hide."""
        start, steps = decay_start(self.config.schedule), self.config.train.max_steps
        if steps is None or start is None or not self.ranks.main:
            return
        per_epoch = self.sampler.batches_per_epoch()
        last_epoch = math.ceil(steps / per_epoch)  # 1-based
        if steps >= self.total_epochs * per_epoch or last_epoch > start:
            return  # train.max_steps does not end the run, or ends it after the decay starts
        s = self.config.schedule
        tqdm.write(
            f"warning: train.max_steps {steps} ends the run in epoch {last_epoch} of "
            f"{self.total_epochs}, before the {s.policy} learning-rate decay starts (epoch "
            f"{start + 1}); to decay within the run, lower schedule.epochs and "
            "schedule.decay_epochs",
            file=sys.stderr,
        )

    def _epoch_desc(self) -> str:
        return f"epoch {self.epoch + 1}/{self.total_epochs}"

    def _postfix(self, losses: dict[str, float]) -> dict[str, str]:
        return {k: f"{v:.3g}" for k, v in {**losses, **self.evaluator.val_scores}.items()}

    def _run_epoch(self, bar: tqdm) -> bool:
        """The rest of the epoch's batches from where the data order stands, counted on the
        run's ``bar``; False when stopped early."""
        self.sampler.set_epoch(self.epoch, self.epoch_batches)
        bar.set_description(self._epoch_desc(), refresh=False)
        cfg = self.config
        means: dict[str, float] = {}  # the last logged losses, shown on the bar
        self.clock.resume()
        for batch in self.loader:
            batch = _to_device(batch, self.device, self.runtime.channels_last)
            update_g = (self.step + 1) % cfg.optim.d_steps == 0
            losses = self.model.train_step(batch, self.stepper, update_g)
            if self.ema is not None:
                self.ema.update()
            self.step += 1
            self.epoch_batches += 1
            self.clock.stepped()
            self.log_window.add(losses)
            self.epoch_window.add(losses)
            bar.update()
            if self.step % cfg.log.every == 0:
                means = self._log_losses()
                bar.set_postfix(self._postfix(means), refresh=False)
            stopping = self._stop_requested()
            evaluated = not stopping and self.step % cfg.log.eval_every == 0
            if evaluated:
                warnings = self.evaluate()
                if warnings:
                    bar.set_postfix_str("WARNING: " + warnings[0], refresh=False)
                else:
                    bar.set_postfix(self._postfix(means), refresh=False)
                stopping = self._stop_requested()  # a signal during validation
            if stopping:  # fit() saves the checkpoint; nothing else runs
                self.stopped_by = self.stop.signal or signal.SIGTERM  # or another rank's signal
                return False
            checkpoint = self.step % cfg.log.checkpoint_every == 0
            if checkpoint:
                self.save_checkpoint()
            snapshot = cfg.log.snapshot_every and self.step % cfg.log.snapshot_every == 0
            if snapshot and self.ranks.main:  # outside `keep`: snapshots are never deleted
                with self._averaged():
                    self.save_generators(self.run.snapshot(self.step))
            if self._at_max_steps() or self._out_of_time():
                return False
            if evaluated or checkpoint or snapshot:  # the time they took was no step's
                self.clock.resume()
        return True

    def _averaged(self) -> contextlib.AbstractContextManager[None]:
        """The generators hold their ``train.ema`` averages inside the block, if any."""
        return self.ema.applied() if self.ema is not None else contextlib.nullcontext()

    def _stop_requested(self) -> bool:
        """A signal on any rank stops every rank after the same step."""
        return any_rank(self.stop.signal is not None, self.device, self.ranks.world_size)

    def _log_losses(self) -> dict[str, float]:
        """Log the mean of each loss since the last log; returns the means."""
        means = self.log_window.means()
        self.log_window = LossMeans()
        lrs = {f"lr_{n}": o.param_groups[0]["lr"] for n, o in self.stepper.optimizers.items()}
        self.report.log(self.step, self.epoch_number, {**means, **lrs, **self.clock.read()})
        if not self.progress and self.ranks.main:  # the bar's postfix shows them otherwise
            self._write_values(means)
        return means

    def _write_values(self, values: dict[str, float], what: str = "") -> None:
        listed = ", ".join(f"{k} {v:.4g}" for k, v in values.items())
        where = f"step {self.step}, epoch {self.epoch_number}"
        tqdm.write(f"{where}{' ' + what if what else ''}: {listed}", file=sys.stderr)

    def _end_epoch(self) -> None:
        metric = None  # plateau: the trainer's metric of the epoch's mean losses, on every rank
        if self.config.schedule.policy == "plateau":
            total = self.model.plateau_metric(self.epoch_window.means())
            metric = mean_over_ranks(total, self.device, self.ranks.world_size)
        for scheduler in self.schedulers.values():
            scheduler.step() if metric is None else scheduler.step(metric)
        self.epoch += 1
        self.epoch_batches = 0
        self.epoch_window = LossMeans()

    # --- evaluation -----------------------------------------------------------------------

    def evaluate(self) -> list[str]:
        """Evaluate (:class:`Evaluator`), log and sample it, and save generator_latest (and
        generator_best when the trainer's ``best_metric`` improves). Returns warnings.

        With ``train.ema`` all of it uses the averaged generator weights."""
        if not self.ranks.main:
            return []
        with self._averaged():
            try:
                found = self.evaluator.run(self.step, self.epoch_number, self.stop)
            except EvaluationStopped:  # nothing logged or saved from a part of the images
                tqdm.write(f"step {self.step}: validation skipped: stopping", file=sys.stderr)
                return []
            self._write_values(self.evaluator.val_scores)
            if found.baseline:
                self._write_values(found.baseline, f"baseline ({self.model.baseline})")
            for message in found.warnings:
                tqdm.write(f"step {self.step}: {message}", file=sys.stderr)
            self.report.samples(self.epoch_number, self.step, found.samples)
            metrics = {**found.values, **found.monitor, **self.clock.read()}
            self.report.log(self.step, self.epoch_number, metrics, found.warnings)
            self.report.update_index()
            self.save_generators(self.run.latest)
            if found.improved:
                self.save_generators(self.run.best)
        return found.warnings

    # --- files ----------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The run summary that generator files store as ``training`` (``translate info``)."""
        data = self.config.data
        return {
            "model": self.config.model,
            "epochs": self.epoch_number,
            "steps": self.step,
            "dataset": data.source(),
            "best_val": self.evaluator.best,
            **({"baseline_val": self.evaluator.baseline} if self.evaluator.baseline else {}),
            "val_split": data.val_split,
            "val_images": self.evaluator.val_images,
            # a label model's class names and colours: serve's paint tab shows them
            **({"labels": asdict(data.labels)} if data.label_nc else {}),
            "device": str(self.runtime.device),
            "precision": self.runtime.precision.name,
            "threads": self.runtime.threads,
        }

    def preprocessing(self) -> InputSpec:
        """How the training data was prepared, as generator files record it."""
        d = self.config.data
        return InputSpec(d.preprocess, d.input_channels, d.output_channels)

    def save_generators(self, path: Path) -> None:
        """Write the generator file ``path`` (in the run directory) from the current weights."""
        save_generators(
            path, self.model.generators(), self.preprocessing(), self.summary(),
            eval_mode=self.evaluator.eval_mode,
        )  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs: networks, optimizers, schedulers, step, RNG states."""
        s = self.stepper
        return {
            "model": self.model.state_dict(),
            "extra": self.model.extra_state(),
            "optimizers": {n: o.state_dict() for n, o in s.optimizers.items()},
            "schedulers": {n: sch.state_dict() for n, sch in self.schedulers.items()},
            "scalers": {n: sc.state_dict() for n, sc in s.scalers.items()},
            "step": self.step,
            "epoch": self.epoch,
            "epoch_batches": self.epoch_batches,
            "run_seconds": self.time.seconds(),  # train.max_minutes counts them on a resume
            **self.evaluator.state_dict(),  # best, baseline, diversity_history
            "loss_window": self.log_window.state_dict(),
            "epoch_window": self.epoch_window.state_dict(),
            "rng": rng_state(),
            # So that convert/info/export/Translator.load take a checkpoint as MODEL.
            CHECKPOINT_KEY: checkpoint_entry(
                self.model.generators(),
                self.preprocessing(),
                self.summary(),
                self.evaluator.eval_mode,
                weights=self.ema.average if self.ema is not None else None,
            ),
            "ema": self.ema.state_dict() if self.ema is not None else None,
        }

    def save_checkpoint(self) -> None:
        """Write ``checkpoints/state_<step>.pt`` (rank 0, after the first step), keeping
        the newest ``log.keep``."""
        if self.ranks.main and self.step > 0:
            self.checkpoints.save(self.step, self.state_dict(), self.config.log.keep)

    def restore(self, state: dict[str, Any], path: Path) -> None:
        """Continue from ``state``, as read from the checkpoint ``path``."""
        try:
            try:
                self.model.load_state_dict(state["model"])
            except RuntimeError as exc:
                raise ValueError(f"{path}: the networks do not fit this config ({exc})") from exc
            self.model.load_extra_state(state["extra"], self.device)
            s = self.stepper
            for name, optimizer in s.optimizers.items():
                optimizer.load_state_dict(state["optimizers"][name])
                self.schedulers[name].load_state_dict(state["schedulers"][name])
                s.scalers[name].load_state_dict(state["scalers"][name])
            self.step, self.epoch = state["step"], state["epoch"]
            self.epoch_batches = state["epoch_batches"]
            self.time.before = state["run_seconds"]
            self.evaluator.load_state_dict(state)
            self.log_window.load_state_dict(state["loss_window"], self.device)
            self.epoch_window.load_state_dict(state["epoch_window"], self.device)
            set_rng_state(state["rng"])
            if self.ema is not None and state.get("ema") is not None:
                self.ema.load_state_dict(state["ema"])
            elif self.ema is not None:
                tqdm.write(f"{path}: no weight average (trained without train.ema); it starts now")
        except KeyError as exc:
            raise ValueError(
                f"{path}: no {exc} entry: written by another version of translate or damaged; "
                "resume from a checkpoint of this version, or start the run again"
            ) from None
