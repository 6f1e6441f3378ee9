"""``translate train CONFIG [--set key=value ...]``, ``translate train --resume RUN_DIR`` and
``translate distill TEACHER --data DIR``, a `train` run of the distillation trainer."""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from translate.core.errors import fail, user_errors
from translate.core.run_dir import RunDir
from translate.training.help import trainers_line

if TYPE_CHECKING:
    from translate.training.config import Config

# A run stopped by a signal exits as the shell reports a process killed by it (128 + N),
# so `translate train ... && translate convert ...` stops there.
EXIT_SIGNAL = 128


def _default_run_dir(config_path: Path) -> Path:
    """``runs/<config>-<time>``; under torchrun ``runs/<config>-<rdzv id>`` instead, the same
    on every rank and node and after a restart (clocks differ; a restart must resume)."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    return Path("runs") / f"{config_path.stem}-{run_id or time.strftime('%Y%m%d-%H%M%S')}"


def _user_error(message: str) -> NoReturn:
    """Exit 1 with one line. Under torchrun rank 0 alone prints it, and also leaves it in
    torchrun's error file, so torchrun's failure summary names it as the root cause."""
    from translate.core.process import Ranks

    if not Ranks.from_env().main:
        sys.exit(1)
    error_file = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if error_file:
        Path(error_file).write_text(json.dumps({"message": message, "timestamp": int(time.time())}))
    fail(message)


def _run_options(command: Callable[..., None]) -> Callable[..., None]:
    """--set, --run-dir, --resume and --no-progress: what every training command takes."""
    options = [
        click.option(
            "--set", "overrides", multiple=True, metavar="KEY=VALUE",
            help="Override a config key, e.g. --set optim.lr_g=1e-4 (value parsed as YAML).",
        ),
        click.option(
            "--run-dir", type=click.Path(file_okay=False, path_type=Path),
            help="Where to write the run (default: runs/<config name or distill>-<time>).",
        ),
        click.option(
            "--resume", "resume_dir",
            type=click.Path(file_okay=False, exists=True, path_type=Path),
            help="Continue the run in this directory from its newest checkpoint.",
        ),
        click.option("--no-progress", is_flag=True, help="No progress bar (logs only)."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


@click.command(
    help="Train a model from a YAML CONFIG (see configs/). Its `model` key picks the "
    f"trainer; trainers: {trainers_line()}. pix2pix takes paired data, pix2pixhd label "
    "maps (data.label_nc) or paired data, cyclegan and cut unpaired (cut: loss.mode=fastcut "
    "for FastCUT, data.single_image for SinCUT); distill and distill_unpaired are what "
    "`translate distill` runs."
)
@click.argument("config_path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@_run_options
def train(
    config_path: Path | None,
    overrides: tuple[str, ...],
    run_dir: Path | None,
    resume_dir: Path | None,
    no_progress: bool,
) -> None:
    """``translate train``: fit the config's trainer (its help, above, lists them)."""
    from translate.training.configure import load_config

    if (config_path is None) == (resume_dir is None):
        raise click.UsageError("give a CONFIG file or --resume RUN_DIR (not both)")
    if resume_dir is not None:
        if run_dir is not None:
            raise click.UsageError("--run-dir and --resume both name the run directory")
        _resume(resume_dir, overrides, no_progress)
    else:
        run_dir = run_dir or _default_run_dir(config_path)
        _fit(lambda: load_config(config_path, overrides), run_dir, False, no_progress)


def _resume(run_dir: Path, overrides: tuple[str, ...], no_progress: bool) -> None:
    """Continue the run in ``run_dir`` as its config.yaml describes (train and distill)."""
    from translate.training.configure import load_config

    _fit(lambda: load_config(RunDir(run_dir).config, overrides), run_dir, True, no_progress)


def _fit(make_config: Callable[[], Config], run_dir: Path, resume: bool, no_progress: bool) -> None:
    """Train (or resume) the run ``make_config()`` describes in ``run_dir``, exiting as the
    shell expects on user errors, a full disk and stop signals."""
    with user_errors(exit_with=_user_error):
        config = make_config()  # without torch, so that a bad config is refused at once
        from translate.training.engine import Engine

        engine = Engine(config, run_dir, resume=resume, progress=not no_progress)
    if engine.ranks.main:
        click.echo(f"run directory: {run_dir}")
    hint = f"resume with: translate train --resume {run_dir}"
    try:
        summary = engine.fit()
    except KeyboardInterrupt:  # a second Ctrl-C: out at once, maybe before the checkpoint
        click.echo(f"interrupted; {hint} (from its newest checkpoint)", err=True)
        sys.exit(EXIT_SIGNAL + signal.SIGINT)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        folder = Path(exc.filename).parent if exc.filename else run_dir
        after = (
            f"the checkpoints written before are intact; free space, then {hint}"
            if RunDir(run_dir).states()
            else "before its first checkpoint, so there is nothing to resume; free space, "
            "then run the same command again"
        )
        raise click.ClickException(
            f"{folder}: {exc.strerror}; training stopped at step {engine.step}, {after}"
        ) from exc
    from translate.training.distributed import leave_distributed

    leave_distributed()
    if engine.stopped_by is not None:
        if engine.ranks.main:
            click.echo(
                f"stopped by {signal.Signals(engine.stopped_by).name} at step "
                f"{summary['steps']}: checkpoint saved, final evaluation skipped; {hint}",
                err=True,
            )
        sys.exit(EXIT_SIGNAL + engine.stopped_by)  # 130 for SIGINT, 143 for SIGTERM
    if engine.ranks.main:
        steps, epochs = _count(summary["steps"], "step"), _count(summary["epochs"], "epoch")
        why = ""
        if engine.timed_out:
            limit = engine.config.train.max_minutes
            why = f" (stopped at the time limit, train.max_minutes {limit:g})"
        # the file `translate convert RUN_DIR` picks, so the line names what the run gives
        click.echo(f"done: {steps}, {epochs}{why}; generator: {RunDir(run_dir).generator()}")
        if engine.timed_out:
            _warn_undecayed(engine.schedulers.values())


def _warn_undecayed(schedulers: Iterable[Any]) -> None:
    """A generator stopped by the time limit before its learning rate decayed is one point
    of the GAN's oscillation: measured, FastCUT on worldmaps scored 14.1 dB undecayed and
    18.5 dB with the decay at about the same step (docs/trainers/cut.md)."""
    from translate.training.schedules import lr_left

    left = [f for f in map(lr_left, schedulers) if f is not None]
    if left and max(left) > 0.5:
        click.echo(
            f"note: the time limit stopped the run at {max(left):.0%} of its starting "
            "learning rate, before its decay, which can leave the generator far off (see "
            "docs/trainers/cut.md, equal wall time); set schedule.epochs and "
            "schedule.decay_epochs so that the decay ends within train.max_minutes",
            err=True,
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@click.command()
@click.argument("teacher", required=False)
@click.option(
    "--data", "data_root", type=click.Path(file_okay=False, path_type=Path),
    help="Dataset folder: paired (aligned or A/B) or unpaired (trainA/trainB).",
)  # fmt: skip
@click.option(
    "--student", help="Student generator (default: mobile_resnet_9blocks, as wide as "
    "fits loss.compression times fewer MACs than the teacher).",
)  # fmt: skip
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    help="A YAML config to start from (e.g. configs/worldmaps_distill.yaml).",
)  # fmt: skip
@_run_options
def distill(
    teacher: str | None,
    data_root: Path | None,
    student: str | None,
    config_path: Path | None,
    overrides: tuple[str, ...],
    run_dir: Path | None,
    resume_dir: Path | None,
    no_progress: bool,
) -> None:
    """Distill TEACHER (a generator file, run directory, checkpoint or model name) into a
    small student generator on the data in --data; the run is a `translate train` run of the
    trainer distill (paired data) or distill_unpaired (unpaired), picked from --data."""
    if resume_dir is not None:
        if teacher or data_root or student or config_path or run_dir:
            raise click.UsageError("--resume RUN_DIR continues a run as it was configured")
        _resume(resume_dir, overrides, no_progress)
        return
    if teacher is None or data_root is None:
        raise click.UsageError("give a TEACHER and --data DIR (or --resume RUN_DIR)")
    run_dir = run_dir or _default_run_dir(Path("distill"))
    _fit(
        lambda: _distill_config(teacher, data_root, student, config_path, overrides),
        run_dir, False, no_progress,
    )  # fmt: skip


def _distill_config(
    teacher: str,
    data_root: Path,
    student: str | None,
    config_path: Path | None,
    overrides: tuple[str, ...],
) -> Config:
    """The distillation the spec starts (see :func:`distill_tree`), with --config's tree,
    then --student, then --set."""
    from translate.training.config import merge, read_config
    from translate.training.configure import from_dict
    from translate.training.specs.distill import distill_tree

    base = read_config(config_path) if config_path is not None else {}
    tree = distill_tree(teacher, data_root, base)
    if student is not None:
        tree = merge(tree, {"generator": {"name": student}})
    return from_dict(tree, overrides)
