"""Super-resolution side by side with BasicSR: the same network, data and recipe, trained at
the same moment on one core each for the same wall time, both scored by one scorer.

    python tools/sr_side_by_side.py --setup                  # once: BasicSR's own venv
    python tools/sr_side_by_side.py --out runs/sr_side_by_side [--minutes 20] [--precision auto]
    python tools/sr_side_by_side.py --out runs/sr_side_by_side --score-only   # score again

BasicSR 1.4.2 (PyPI) runs its own ``basicsr.train`` from a virtual environment of its own
(``--basicsr-venv``, made by ``--setup``: torch and torchvision as ours, then basicsr, plus a
shim for ``torchvision.transforms.functional_tensor``, which torchvision removed and
BasicSR imports). Ours runs ``translate train``. Both train Real-ESRGAN's
``SRVGGNetCompact`` (BasicSR's ``srvgg_arch``, our ``srvgg_compact``) on the same LR/HR
pairs (``--train``: A/ LR, B/ HR) with L1, Adam 2e-4 (0.9, 0.99), constant learning rate,
batch 16, 128 px HR crops, horizontal flips and (``--rotations``) the 8 symmetries of a
square, no validation, and save the generator every ``--every`` iterations. Each runs under
``taskset`` on one core with one thread; both get SIGTERM after ``--minutes``.

Then one scorer, ``translate.core.metrics.SRScores`` (PSNR-Y, SSIM-Y, ``scale`` border pixels
cropped), scores every saved generator of both on whole held-out photos (``--test``), BasicSR's
``.pth`` files read by our own loader (``translate.models.loading.load_model``), plus PIL's
bicubic upscaling of the same LR images. One BasicSR checkpoint also goes through
``translate convert`` and its outputs are compared with the Python path's. The report (a
markdown table, ``side_by_side.md``, and every figure, ``side_by_side.json``) lands in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

BASICSR = "basicsr==1.4.2"
TORCH = ("torch==2.14.1", "torchvision==0.29.1")  # ours; pip finds them on this machine's disk
# torchvision 0.17 removed transforms.functional_tensor; BasicSR 1.4.2 imports this from it.
SHIM = (
    '"""Shim for BasicSR 1.4.2: torchvision removed this module (tools/sr_side_by_side.py)."""\n'
    "from torchvision.transforms.functional import rgb_to_grayscale  # noqa: F401\n"
)
# basicsr.train's own pipeline, rooted at our output folder (its __main__ roots it at
# site-packages): ``-c CODE ROOT -opt FILE``.
BASICSR_MAIN = (
    "import sys; from basicsr.train import train_pipeline; train_pipeline(sys.argv.pop(1))"
)
EXPERIMENT = "srvgg_side_by_side"
BASICSR_ITER = re.compile(r"\biter:\s*([\d,]+),")
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
STOP_GRACE_S = 120  # after SIGTERM: ours saves its checkpoint, then SIGKILL
POLL_S = 0.2


@dataclass(frozen=True)
class Recipe:
    """What both sides train with."""

    num_feat: int = 64
    num_conv: int = 16
    scale: int = 4
    batch: int = 16
    crop: int = 128  # HR pixels
    lr: float = 2e-4
    beta1: float = 0.9
    beta2: float = 0.99
    rotations: bool = True  # the 8 symmetries (BasicSR's use_rot); else horizontal flips only
    workers: int = 1  # data loader processes, each side
    seed: int = 0
    every: int = 100  # iterations between saved generators


# --- the two configs ------------------------------------------------------------------------


def basicsr_options(recipe: Recipe, train: Path) -> dict[str, Any]:
    """BasicSR's option file (``train.py -opt``) for ``recipe`` on the pairs in ``train``."""
    return {
        "name": EXPERIMENT,
        "model_type": "SRModel",
        "scale": recipe.scale,
        "num_gpu": 0,  # the CPU
        "manual_seed": recipe.seed,
        "datasets": {
            "train": {
                "name": "pairs",
                "type": "PairedImageDataset",
                "dataroot_gt": str(train / "B"),
                "dataroot_lq": str(train / "A"),
                "filename_tmpl": "{}",
                "io_backend": {"type": "disk"},
                "gt_size": recipe.crop,
                "use_hflip": True,
                "use_rot": recipe.rotations,
                "num_worker_per_gpu": recipe.workers,
                # as ours: BasicSR's default starts its workers anew every epoch, a cost
                # that is its loader's default, not its training step's
                "persistent_workers": recipe.workers > 0,
                "batch_size_per_gpu": recipe.batch,
                "dataset_enlarge_ratio": 1,
                "prefetch_mode": None,
            }
        },
        "network_g": {
            "type": "SRVGGNetCompact",
            "num_in_ch": 3,
            "num_out_ch": 3,
            "num_feat": recipe.num_feat,
            "num_conv": recipe.num_conv,
            "upscale": recipe.scale,
            "act_type": "prelu",
        },
        "path": {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None},
        "train": {
            "ema_decay": 0,
            "optim_g": {
                "type": "Adam",
                "lr": recipe.lr,
                "weight_decay": 0,
                "betas": [recipe.beta1, recipe.beta2],
            },  # fmt: skip
            # constant: the one milestone is never reached
            "scheduler": {"type": "MultiStepLR", "milestones": [10**9], "gamma": 0.5},
            "total_iter": 10**9,  # stopped by the clock
            "warmup_iter": -1,
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
        },
        # every iteration logged: the benchmark reads when each one ends
        "logger": {
            "print_freq": 1,
            "save_checkpoint_freq": recipe.every,
            "use_tb_logger": False,
            "wandb": {"project": None, "resume_id": None},
        },  # fmt: skip
        "dist_params": {"backend": "nccl", "port": 29500},
    }


def our_config(
    recipe: Recipe,
    train: Path,
    precision: str,
    crop_size: int,
    schema: dict[str, set[str]],
    rotation_key: str = "rotate",
) -> dict[str, Any]:
    """Our ``model: sr`` config for ``recipe``: ``crop_size`` in the unit the data layout
    counts (:func:`crop_unit`); ``schema`` the keys of ``data.preprocess`` and ``train`` this
    checkout has (``rotation_key`` turns the 8 symmetries on, ``train.threads`` pins torch's),
    so that the script runs before and after issue 26's keys."""
    preprocess: dict[str, Any] = {"mode": "crop", "crop_size": crop_size, "flip": True}
    if rotation_key in schema["preprocess"]:
        preprocess[rotation_key] = recipe.rotations
    elif recipe.rotations:
        raise ValueError(
            f"--rotation-key {rotation_key}: data.preprocess has no such key here; name the key "
            "that turns on the 8 symmetries, or --no-rotations (flips only, both sides)"
        )
    train_section = {
        "seed": recipe.seed, "batch_size": recipe.batch, "device": "cpu", "precision": precision,
    }  # fmt: skip
    if "threads" in schema["train"]:
        train_section["threads"] = 1
    return {
        "model": "sr",
        "data": {
            "root": str(train),
            "degradation": None,
            "preprocess": preprocess,
            # the training pairs, all of them (auto would hold a tenth out); never scored
            "val_split": "train",
            "val_size": 1,
            "num_workers": recipe.workers,
        },  # fmt: skip
        "generator": {
            "name": "srvgg_compact",
            "options": {
                "scale": recipe.scale,
                "num_feat": recipe.num_feat,
                "num_conv": recipe.num_conv,
            },
        },  # fmt: skip
        "loss": {"lambda_l1": 1.0, "lambda_gan": 0.0},
        "optim": {"lr_g": recipe.lr, "beta1": recipe.beta1, "beta2": recipe.beta2},
        "schedule": {"policy": "linear", "epochs": 10**6, "decay_epochs": 0},  # constant
        "train": train_section,
        "log": {
            # every step logged, as BasicSR's; no evaluation; the training state saved as
            # often as BasicSR saves its own, and each generator kept (snapshots are never
            # deleted)
            "every": 1,
            "eval_every": 10**9,
            "checkpoint_every": recipe.every,
            "keep": 1,
            "snapshot_every": recipe.every,
            "tensorboard": False,
        },  # fmt: skip
    }


def our_schema() -> dict[str, set[str]]:
    """The keys of ``data.preprocess`` and ``train`` in this checkout."""
    from translate.data.transforms import Preprocess
    from translate.training.config import TrainConfig

    return {
        "preprocess": set(Preprocess.__dataclass_fields__),
        "train": set(TrainConfig.__dataclass_fields__),
    }


def crop_unit(train: Path, crop: int, scale: int) -> int:
    """``data.preprocess.crop_size`` for an HR crop of ``crop`` pixels on paired folders:
    asked of the dataset itself, since paired SR data counted LR pixels before issue 26."""
    from translate.data.datasets import PairedFolder
    from translate.data.transforms import Preprocess

    preprocess = Preprocess(mode="crop", crop_size=crop, flip=False)
    side = PairedFolder(train, split=".", preprocess=preprocess, scale=scale)[0]["target"].shape[-1]
    if side == crop:
        return crop
    if side == crop * scale:
        return crop // scale
    raise RuntimeError(f"{train}: a crop_size {crop} crop gave {side} px HR crops")


# --- the logs ---------------------------------------------------------------------------------


def basicsr_iteration(line: str) -> int | None:
    """The iteration a line of BasicSR's training log reports (``iter:   1,200,``), if any."""
    found = BASICSR_ITER.search(line)
    return int(found.group(1).replace(",", "")) if found else None


def our_iteration(line: str) -> int | None:
    """The step of a ``metrics.jsonl`` row with training losses, if the line is one."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return int(row["step"]) if isinstance(row, dict) and "G_L1" in row else None


class Tail:
    """Follows a growing log file and notes when each iteration first shows in it."""

    def __init__(self, path: Path, parse: Callable[[str], int | None]) -> None:
        self.path, self.parse = path, parse
        self.offset, self.rest = 0, b""
        self.seen: dict[int, float] = {}  # iteration -> time.time() it was first read

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as file:
                file.seek(self.offset)
                data = file.read()
        except FileNotFoundError:
            return
        now = time.time()
        self.offset += len(data)
        *lines, self.rest = (self.rest + data).split(b"\n")
        for line in lines:
            iteration = self.parse(line.decode("utf-8", "replace"))
            if iteration is not None:
                self.seen.setdefault(iteration, now)


def pace(seen: dict[int, float], launched: float, stopped: float) -> dict[str, Any]:
    """Iterations reached by ``stopped``, launch to the first iteration, and seconds per
    iteration from the first to the last, of a side's ``Tail.seen``."""
    done = {it: t for it, t in seen.items() if t <= stopped}
    if not done:
        return {"iterations": 0, "startup_s": None, "s_per_iteration": None}
    first, last = min(done), max(done)
    span = done[last] - done[first]
    return {
        "iterations": last,
        "startup_s": done[first] - launched,
        "s_per_iteration": span / (last - first) if last > first else None,
    }


# --- setup -------------------------------------------------------------------------------------


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def basicsr_ready(venv: Path) -> bool:
    python = venv_python(venv)
    if not python.exists():
        return False
    check = [str(python), "-c", "import basicsr.train, basicsr.archs.srvgg_arch"]
    return subprocess.run(check, capture_output=True).returncode == 0


def setup(venv: Path) -> None:
    """BasicSR 1.4.2 in a virtual environment of its own, with the shim it needs."""
    if basicsr_ready(venv):
        print(f"{venv}: BasicSR is ready")
        return
    python = str(venv_python(venv))
    if not venv_python(venv).exists():
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    subprocess.run([python, "-m", "pip", "install", *TORCH], check=True)
    subprocess.run([python, "-m", "pip", "install", BASICSR], check=True)
    where = subprocess.run(
        [python, "-c", "import os, torchvision; print(os.path.dirname(torchvision.__file__))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(where, "transforms", "functional_tensor.py").write_text(SHIM)
    if not basicsr_ready(venv):
        raise SystemExit(f"{venv}: basicsr still does not import; see the pip output above")
    print(f"{venv}: BasicSR ready")


# --- training --------------------------------------------------------------------------------


@dataclass
class Side:
    name: str
    command: list[str]
    core: int
    output: Path  # stdout and stderr
    tail: Tail
    launched: float = 0.0
    process: subprocess.Popen[bytes] | None = None


def one_core_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def threads(sides: list[Side]) -> dict[str, str]:
    """torch's thread count in each side's interpreter, core and environment."""
    probe = "import torch; print(torch.get_num_threads())"
    return {
        s.name: subprocess.run(
            ["taskset", "-c", str(s.core), s.command[0] if s.name == "BasicSR" else sys.executable,
             "-c", probe], env=one_core_env(), capture_output=True, text=True,
        ).stdout.strip()
        for s in sides
    }  # fmt: skip


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def stop(sides: list[Side]) -> None:
    """SIGTERM to every side still running, at once; SIGKILL to a side's process group (its
    loader workers) still there after ``STOP_GRACE_S``."""
    for side in sides:
        if side.process.poll() is None:
            side.process.send_signal(signal.SIGTERM)
    for side in sides:
        try:
            side.process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(side.process.pid, signal.SIGKILL)  # the group this script started
            side.process.wait()
        side.tail.poll()


def train_both(sides: list[Side], seconds: float) -> dict[str, Any]:
    """Launch every side at once, each on its core; SIGTERM them all after ``seconds`` (or
    when one exits), wait, and return each side's pace."""
    for side in sides:
        with open(side.output, "wb") as out:
            side.process = subprocess.Popen(
                ["taskset", "-c", str(side.core), *side.command], stdout=out,
                stderr=subprocess.STDOUT, env=one_core_env(), start_new_session=True,
            )  # fmt: skip
        side.launched = time.time()
    deadline = min(s.launched for s in sides) + seconds
    early = None
    try:
        while time.time() < deadline:
            for side in sides:
                side.tail.poll()
            early = next((s for s in sides if s.process.poll() is not None), None)
            if early is not None:
                break
            time.sleep(POLL_S)
    finally:  # also on Ctrl-C: the sides run in sessions of their own, which it misses
        stopped = time.time()
        stop(sides)
    result = {
        s.name: {
            **pace(s.tail.seen, s.launched, stopped),
            "core": s.core,
            "exit_code": s.process.returncode,
            "output": str(s.output),
        }  # fmt: skip
        for s in sides
    }
    if early is not None:
        lines = early.output.read_text(errors="replace").splitlines()[-15:]
        raise SystemExit(
            f"{early.name} exited early (code {early.process.returncode}) after "
            f"{stopped - early.launched:.0f} s; the end of {early.output}:\n" + "\n".join(lines)
        )
    return result


# --- scoring -----------------------------------------------------------------------------------


def checkpoints(out: Path) -> dict[str, dict[int, Path]]:
    """The saved generators of each side by iteration."""
    ours = out / "ours" / "generators"
    basicsr = out / "basicsr" / "experiments" / EXPERIMENT / "models"
    return {
        "ours": {int(p.stem.rsplit("_", 1)[1]): p for p in ours.glob("generator_*.safetensors")},
        "BasicSR": {
            int(p.stem.rsplit("_", 1)[1]): p
            for p in basicsr.glob("net_g_*.pth")
            if p.stem.rsplit("_", 1)[1].isdigit()
        },
    }


def test_pairs(test: Path) -> list[tuple[Path, Path]]:
    from translate.data.layout import match_pairs

    return match_pairs(test / "A", test / "B")


def score_model(path: Path, test: Path) -> dict[str, float]:
    """PSNR-Y / SSIM-Y of the generator in ``path`` on the whole pairs of ``test``, fp32,
    as ``translate evaluate`` scores an SR model."""
    from translate.core.metrics import SRScores
    from translate.evaluation import scores
    from translate.models.loading import load_model
    from translate.models.model_file import declared_geometry

    model = load_model(path, "cpu")
    (generator,) = model.generators.values()
    preprocess = scores.whole_images(model.preprocess, generator)
    source = scores.model_images(generator, test, preprocess, ".", batch_size=1, device="cpu")
    scale = declared_geometry(generator)["scale"]
    result = scores.score_pairs(*source, paired=SRScores(border=scale), progress=False)
    return {"psnr_y": result["psnr_y"], "ssim_y": result["ssim_y"], "images": result["images"]}


def score_bicubic(test: Path, scale: int) -> dict[str, float]:
    """PIL's bicubic upscaling of the LR images, scored as the models are."""
    import numpy as np
    from PIL import Image

    from translate.core.metrics import SRScores
    from translate.data.images import read_image
    from translate.data.transforms import to_tensor

    scorer = SRScores(border=scale)
    for lr_path, hr_path in test_pairs(test):
        lr, hr = read_image(lr_path), read_image(hr_path)
        size = (lr.shape[1] * scale, lr.shape[0] * scale)
        if (hr.shape[1], hr.shape[0]) != size:
            raise ValueError(f"{hr_path}: not {scale}x its LR image {lr_path}")
        up = Image.fromarray(lr).resize(size, Image.BICUBIC)
        scorer.add(to_tensor(np.asarray(up))[None], to_tensor(hr)[None])
    result = scorer.result()
    return {"psnr_y": result["psnr_y"], "ssim_y": result["ssim_y"], "images": scorer.count}


def score_all(out: Path, test: Path, scale: int) -> dict[str, Any]:
    """Every checkpoint of both sides, and bicubic; a file a stop cut short is noted."""
    scored: dict[str, Any] = {"bicubic (PIL)": score_bicubic(test, scale)}
    for name, found in checkpoints(out).items():
        rows: dict[int, Any] = {}
        for iteration, path in sorted(found.items()):
            try:
                rows[iteration] = score_model(path, test)
            except Exception as exc:  # e.g. BasicSR killed while writing its last .pth
                rows[iteration] = {"error": f"{path}: {exc}"}
            print(f"scored {name} {iteration}: {rows[iteration]}", flush=True)
        scored[name] = rows
    return scored


def cross_check(out: Path, test: Path) -> dict[str, Any]:
    """BasicSR's newest loadable checkpoint through ``translate convert`` against the Python
    path (``load_model``): the largest pixel difference of the 8-bit outputs."""
    import numpy as np
    import torch

    from translate.core.metrics import SRScores
    from translate.data.images import read_image
    from translate.data.transforms import to_tensor
    from translate.models.loading import load_model
    from translate.models.model_file import declared_geometry

    for iteration, path in sorted(checkpoints(out)["BasicSR"].items(), reverse=True):
        try:
            model = load_model(path, "cpu")
        except Exception:
            continue
        (generator,) = model.generators.values()
        dest = out / "convert" / str(iteration)
        translate_cli = Path(sys.executable).with_name("translate")
        command = [
            str(translate_cli), "convert", str(path), str(test / "A"), str(dest),
            "--device", "cpu", "--precision", "fp32", "--overwrite",
        ]  # fmt: skip
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        worst, files = 0, SRScores(border=declared_geometry(generator)["scale"])
        for lr_path, hr_path in test_pairs(test):
            with torch.inference_mode():
                output = generator(to_tensor(read_image(lr_path))[None].float())
            python = ((output[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0)
            converted = read_image(dest / lr_path.name)
            if converted.shape != tuple(python.shape):
                raise RuntimeError(
                    f"{dest / lr_path.name}: {converted.shape}, expected {python.shape}"
                )
            diff = np.abs(converted.astype(int) - python.numpy().astype(int)).max()
            worst = max(worst, int(diff))
            files.add(to_tensor(converted)[None], to_tensor(read_image(hr_path))[None])
        return {
            "checkpoint": str(path), "iteration": iteration, "command": " ".join(command),
            "max_pixel_difference": worst, "python_scores": score_model(path, test),
            "convert_psnr_y": files.result()["psnr_y"],
        }  # fmt: skip
    return {"error": "no BasicSR checkpoint loads"}


# --- the report --------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import torch

    from translate.core.runtime import cpu_info

    cpu = cpu_info()
    return {
        "cpu": cpu.model, "cores": os.cpu_count(), "torch": torch.__version__,
        "cpu flags": " ".join(f for f in CPU_FLAGS if f in cpu.flags) or "none listed",
        "native bf16": cpu.native_bf16, "python": platform.python_version(),
    }  # fmt: skip


def _cell(value: Any, digits: int) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def markdown(report: dict[str, Any]) -> str:
    """The report's tables: pace per side, then PSNR-Y / SSIM-Y by iteration."""
    training, scored, sides = report["training"], report["scores"], ("BasicSR", "ours")
    m = report["machine"]
    lines = [
        f"{m['cpu']}, {m['cores']} cores, flags {m['cpu flags']}, torch {m['torch']}; "
        f"{report['minutes']:g} minutes each, one core each; ours {report['precision']}.",
        f"Load before: `{report['uptime_before']}`; after: `{report['uptime_after']}`.",
        "",
        "| | " + " | ".join(sides) + " |",
        "| --- | ---: | ---: |",
    ]
    for label, key, digits in (
        ("iterations reached", "iterations", 0),
        ("seconds per iteration", "s_per_iteration", 3),
        ("launch to first iteration (s)", "startup_s", 1),
    ):
        lines.append(
            f"| {label} | " + " | ".join(_cell(training[s][key], digits) for s in sides) + " |"
        )
    bicubic = scored["bicubic (PIL)"]
    lines += [
        "",
        f"PSNR-Y / SSIM-Y on {bicubic['images']} held-out photos ({report['test']}); "
        f"PIL bicubic: {bicubic['psnr_y']:.2f} dB / {bicubic['ssim_y']:.4f}.",
        "",
        "| iterations | BasicSR PSNR-Y | ours PSNR-Y | BasicSR SSIM-Y | ours SSIM-Y |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]

    def value(side: str, iteration: int, key: str) -> Any:
        return scored[side].get(str(iteration), scored[side].get(iteration, {})).get(key)

    iterations = sorted({int(i) for s in sides for i in scored[s]})
    for it in iterations:
        cells = [_cell(value(s, it, "psnr_y"), 2) for s in sides]
        cells += [_cell(value(s, it, "ssim_y"), 4) for s in sides]
        lines.append(f"| {it:,} | " + " | ".join(cells) + " |")
    check = report.get("cross_check", {})
    if "max_pixel_difference" in check:
        lines += [
            "",
            f"`translate convert` of BasicSR's iteration {check['iteration']:,} checkpoint: "
            f"largest difference from the Python path {check['max_pixel_difference']} "
            f"grey levels; PSNR-Y of its files {check['convert_psnr_y']:.2f} dB, of the Python "
            f"path {check['python_scores']['psnr_y']:.2f} dB.",
        ]
    failed = [f"{s} {i}: {r['error']}" for s in sides for i, r in scored[s].items() if "error" in r]
    lines += [f"- not scored: {f}" for f in failed]
    return "\n".join(lines) + "\n"


# --- main --------------------------------------------------------------------------------------


def training_report(
    parser: argparse.ArgumentParser,
    out: Path,
    score_only: bool,
    train: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """The training half of a side by side: with ``--score-only`` the report kept in
    ``out/training.json``; else ``train()``'s, run in an empty ``out`` and kept there."""
    from translate.core.atomic import atomic_write_text

    training_file = out / "training.json"
    if score_only:
        if not training_file.exists():
            parser.error(f"--score-only: {training_file} is missing; train first")
        return json.loads(training_file.read_text())
    if out.exists() and any(out.iterdir()):
        parser.error(f"--out {out}: not empty; name a new folder (or --score-only)")
    report = train()
    atomic_write_text(training_file, json.dumps(report, indent=2))
    return report


def write_report(out: Path, report: dict[str, Any], table: str) -> None:
    """``out/side_by_side.json`` and ``.md``, and the table printed."""
    from translate.core.atomic import atomic_write_text

    atomic_write_text(out / "side_by_side.json", json.dumps(report, indent=2))
    atomic_write_text(out / "side_by_side.md", table)
    print(table)
    print(f"wrote {out / 'side_by_side.md'} and {out / 'side_by_side.json'}")


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setup", action="store_true", help="make the BasicSR venv and exit")
    parser.add_argument("--basicsr-venv", type=Path, default=Path(".venv-basicsr"))
    parser.add_argument("--train", type=Path, default=Path("datasets/sr-photos/train"),
                        help="training pairs: A/ LR, B/ HR (same names)")  # fmt: skip
    parser.add_argument("--test", type=Path, default=Path("datasets/sr-photos/test"),
                        help="held-out pairs scored: A/ LR, B/ HR")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("runs/sr_side_by_side"))
    parser.add_argument("--minutes", type=float, default=20.0, help="wall time of each side")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                        help="ours (BasicSR trains in fp32)")  # fmt: skip
    parser.add_argument("--every", type=int, default=100, help="iterations between checkpoints")
    parser.add_argument("--num-feat", type=int, default=64)
    parser.add_argument("--num-conv", type=int, default=16)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crop", type=int, default=128, help="HR crop side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="data loader processes, each side")
    parser.add_argument("--rotations", action=argparse.BooleanOptionalAction, default=True,
                        help="the 8 symmetries of a square for both (else h-flips)")  # fmt: skip
    parser.add_argument("--rotation-key", default="rotate",
                        help="our data.preprocess key that turns them on")  # fmt: skip
    parser.add_argument("--cores", default="0,1", help="ours,BasicSR: the core of each")
    parser.add_argument("--score-only", action="store_true", help="score --out's runs again")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.every < 1:
        parser.error("--minutes must be above 0 and --every at least 1")
    cores = args.cores
    try:
        args.cores = [int(c) for c in cores.split(",")]
    except ValueError:
        args.cores = []
    if len(args.cores) != 2:
        parser.error(f"--cores {cores}: two core numbers, ours then BasicSR's, e.g. 0,1")
    if args.setup:
        setup(args.basicsr_venv)
        return None
    recipe = Recipe(
        num_feat=args.num_feat, num_conv=args.num_conv, batch=args.batch, crop=args.crop,
        rotations=args.rotations, workers=args.workers, seed=args.seed, every=args.every,
    )  # fmt: skip
    for folder in (args.train, args.test):
        for sub in ("A", "B"):
            if not (folder / sub).is_dir():
                parser.error(f"{folder / sub}: no such folder (pairs: A/ LR, B/ HR)")
    out = args.out.resolve()

    def train() -> dict[str, Any]:
        if not basicsr_ready(args.basicsr_venv):
            parser.error(f"--basicsr-venv {args.basicsr_venv}: no BasicSR; run with --setup first")
        return prepare_and_train(args, recipe, out)

    report = training_report(parser, out, args.score_only, train)
    started = time.time()
    report["scores"] = score_all(out, args.test.resolve(), recipe.scale)
    report["cross_check"] = cross_check(out, args.test.resolve())
    report["scoring_s"] = time.time() - started
    report["test"] = str(args.test)
    write_report(out, report, markdown(report))
    return report


def prepare_and_train(args: argparse.Namespace, recipe: Recipe, out: Path) -> dict[str, Any]:
    """Write both configs, train both sides side by side, and return what was measured."""
    train = args.train.resolve()
    crop_size = crop_unit(train, recipe.crop, recipe.scale)
    try:  # before anything is written: a refused key leaves --out as it was
        our = our_config(recipe, train, args.precision, crop_size, our_schema(), args.rotation_key)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    out.mkdir(parents=True, exist_ok=True)
    options, config = out / "basicsr_options.yml", out / "ours.yaml"
    options.write_text(yaml.safe_dump(basicsr_options(recipe, train), sort_keys=False))
    config.write_text(yaml.safe_dump(our, sort_keys=False))
    ours_core, basicsr_core = args.cores
    translate_cli = Path(sys.executable).with_name("translate")
    sides = [
        Side("ours",
             [str(translate_cli), "train", str(config), "--run-dir", str(out / "ours"),
              "--no-progress"],
             ours_core, out / "ours.log", Tail(out / "ours" / "metrics.jsonl", our_iteration)),
        Side("BasicSR",
             [str(venv_python(args.basicsr_venv)), "-c", BASICSR_MAIN, str(out / "basicsr"),
              "-opt", str(options)],
             basicsr_core, out / "basicsr.log", Tail(out / "basicsr.log", basicsr_iteration)),
    ]  # fmt: skip
    (out / "basicsr").mkdir()
    probed = threads(sides)
    before = uptime()
    print(f"training both for {args.minutes:g} minutes: {before}", flush=True)
    training = train_both(sides, args.minutes * 60)
    return {
        "machine": machine(), "recipe": asdict(recipe), "minutes": args.minutes,
        "precision": args.precision, "our_crop_size": crop_size, "threads": probed,
        "uptime_before": before, "uptime_after": uptime(), "training": training,
        "commands": {s.name: s.command for s in sides},
    }  # fmt: skip


if __name__ == "__main__":
    main()
