"""``translate train CONFIG [--set key=value ...]`` and ``translate train --resume RUN_DIR``."""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import NoReturn

import click

# A run stopped by a signal exits as the shell reports a process killed by it (128 + N),
# so `translate train ... && translate convert ...` stops there.
EXIT_SIGNAL = 128


def _default_run_dir(config_path: Path) -> Path:
    return Path("runs") / f"{config_path.stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def _user_error(message: str) -> NoReturn:
    """Exit 1 with one line. Under torchrun rank 0 alone prints it, and also leaves it in
    torchrun's error file, so torchrun's failure summary names it as the root cause."""
    from translate.runtime import Ranks

    if not Ranks.from_env().main:
        sys.exit(1)
    error_file = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if error_file:
        Path(error_file).write_text(json.dumps({"message": message, "timestamp": int(time.time())}))
    raise click.ClickException(message)


@click.command()
@click.argument("config_path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE",
    help="Override a config key, e.g. --set optim.lr_g=1e-4 (value parsed as YAML).",
)  # fmt: skip
@click.option(
    "--run-dir", type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the run (default: runs/<config>-<time>).",
)  # fmt: skip
@click.option(
    "--resume", "resume_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Continue the run in this directory from its newest checkpoint.",
)  # fmt: skip
@click.option("--no-progress", is_flag=True, help="No progress bar (logs only).")
def train(
    config_path: Path | None,
    overrides: tuple[str, ...],
    run_dir: Path | None,
    resume_dir: Path | None,
    no_progress: bool,
) -> None:
    """Train a Pix2Pix or CycleGAN model from a YAML CONFIG (see configs/)."""
    from translate.training.config import load_config
    from translate.training.engine import Trainer

    if (config_path is None) == (resume_dir is None):
        raise click.UsageError("give a CONFIG file or --resume RUN_DIR (not both)")
    if resume_dir is not None:
        if run_dir is not None:
            raise click.UsageError("--run-dir and --resume both name the run directory")
        run_dir, config_path = resume_dir, resume_dir / "config.yaml"
    else:
        run_dir = run_dir or _default_run_dir(config_path)
    try:
        config = load_config(config_path, overrides)
        trainer = Trainer(config, run_dir, resume=resume_dir is not None, progress=not no_progress)
    except ValueError as exc:
        _user_error(str(exc))
    if trainer.ranks.main:
        click.echo(f"run directory: {run_dir}")
    resume = f"resume with: translate train --resume {run_dir}"
    try:
        summary = trainer.fit()
    except KeyboardInterrupt:  # a second Ctrl-C: out at once, maybe before the checkpoint
        click.echo(f"interrupted; {resume} (from its newest checkpoint)", err=True)
        sys.exit(EXIT_SIGNAL + signal.SIGINT)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        folder = Path(exc.filename).parent if exc.filename else run_dir
        raise click.ClickException(
            f"{folder}: {exc.strerror}; training stopped at step {trainer.step}, the "
            f"checkpoints written before are intact; free space, then {resume}"
        ) from exc
    if trainer.stopped_by is not None:
        if trainer.ranks.main:
            click.echo(
                f"stopped by {signal.Signals(trainer.stopped_by).name} at step "
                f"{summary['steps']}: checkpoint saved, final evaluation skipped; {resume}",
                err=True,
            )
        sys.exit(EXIT_SIGNAL + trainer.stopped_by)  # 130 for SIGINT, 143 for SIGTERM
    if trainer.ranks.main:
        click.echo(
            f"done: {summary['steps']} steps, {summary['epochs']} epochs; "
            f"generator: {run_dir / 'generator_latest.safetensors'}"
        )
