"""Speed and memory figures for the README.

    python tools/benchmark.py [--quick] [--device auto|cpu|cuda] [--json OUT] [--only SECTION ...]

Seven measurements on synthetic data, each case in a fresh child process so that its peak
memory is its own (CPU: the child's peak RSS, Python and torch included; CUDA:
``torch.cuda.max_memory_allocated``):

- training: iterations/s and peak memory of pix2pix (unet_256, batch norm, PatchGAN) and
  CycleGAN (resnet_9blocks, instance norm) at 256x256, batch 1, per precision, with our
  trainers' ``train_step`` and with the reference-style steps below (``REFERENCE_STEPS``);
- converter: ``convert_folder`` images/s over a folder of PNGs against the bare generator's
  forward images/s at the same batch size and precision;
- data loader: ``PairedFolder`` + ``DataLoader`` images/s against the training step's rate;
- unpaired: our ``train_step`` of CUT and FastCUT against our CycleGAN step (``UNPAIRED``),
  iterations/s and peak memory, per precision (bf16 on every CPU, native or not).
- real time: latency (p50, p95) and frames/s at batch 1 of the real-time student, the mobile
  student it replaced, resnet_9blocks and the demo U-Net, in fp32, bf16 (where native) and
  through the ONNX export on onnxruntime (``REALTIME``);
- video: ``convert_video`` frames/s end to end (decode, translate, encode an H.264 clip with
  audio) against the bare forward pass of the same student, batch and precision;
- backends: the demo model, the distilled students and ``demo-sr`` (256 -> 1024) through the
  Translator per inference backend and precision (``BACKENDS``: torch fp32, bf16 where
  native, torch bf16 with ``--compile`` where g++ is, onnxruntime and openvino in fp32 and
  int8, openvino bf16 where native) on 1 and 2 threads (``--threads``): batch-1 latency and
  frames/s, and for the demo ``convert_folder`` images/s over one folder of
  ``--convert-images`` PNGs (192; made once per run), and the converter's defaults against
  its settings before them (``CONVERT_SETTINGS``). Each row has its threads and the load
  average when it started; the machine line names the CPU's SIMD flags. int8 models are
  calibrated on 8 images like the converted ones, with no PSNR floor (the student's weights
  are random), and the row gives the PSNR kept.
  ``--models`` picks the models: the whole section takes about 12 minutes on 2 cores.
- distributed: our pix2pix step on 2 gloo ranks of the CPU, gradients all-reduced during
  backward (``train.overlap_grad_reduce``, the default) against one flat all-reduce after it.
- sr: super-resolution (``SR_TRAINING``, ``SR_REALTIME``): our ``model: sr`` train step
  (L1, bicubic LR made in the step) against a BasicSR-style step of the same network and loss
  (``reference_sr``), at an HR crop of the image side, batch ``--batch``; and the x4
  networks' parameters, GMAC and batch-1 latency at the image side (256: 256x256 ->
  1024x1024) in fp32, bf16 (where native) and ONNX.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

import translate
from translate import Translator, convert_folder
from translate.conversion.video import convert_video
from translate.core.atomic import atomic_write_text
from translate.core.runtime import Precision, cpu_info, resolve_device
from translate.data.datasets import PairedFolder
from translate.data.degradations import build_degradation
from translate.data.images import write_image
from translate.data.transforms import Preprocess
from translate.inference.export import export_generator
from translate.inference.options import ConvertOptions, TranslatorOptions
from translate.models.loading import load_model
from translate.models.model_file import GeneratorSpec, LoadedModel, save_generators
from translate.networks import build_generator, count_macs
from translate.training.image_pool import ImagePool

MODELS = {
    # model -> (generator, its options, discriminator options, GAN loss) as the reference has them
    "pix2pix": ("unet_256", {"norm": "batch", "dropout": True}, {"norm": "batch"}, "vanilla"),
    "cyclegan": ("resnet_9blocks", {"norm": "instance"}, {"norm": "instance"}, "lsgan"),
}
# The unpaired trainers side by side: label -> (model, its loss section), reference defaults.
UNPAIRED = {
    "CycleGAN": ("cyclegan", {}),
    "CUT": ("cut", {"mode": "cut"}),
    "FastCUT": ("cut", {"mode": "fastcut"}),
}


# The real-time models: the student configs/worldmaps_distill.yaml distills (shuffle_resnet,
# ngf 8), the mobile_resnet_9blocks student of that width it replaced, the reference-width
# teacher architecture, and the bundled demo U-Net.
STUDENT = GeneratorSpec("shuffle_resnet", 3, 3, {"ngf": 8})
MOBILE_STUDENT = GeneratorSpec("mobile_resnet_9blocks", 3, 3, {"ngf": 8})
SECTIONS = (
    "training", "converter", "loader", "unpaired", "realtime", "video", "backends", "ray",
    "distributed", "sr",
)  # fmt: skip
REALTIME = {
    "student": STUDENT,
    "mobile_student": MOBILE_STUDENT,
    "resnet_9blocks": GeneratorSpec("resnet_9blocks", 3, 3, {}),
    "demo": "demo",
}
# The Translator's backends side by side: (backend, precision); bf16 only where native.
BACKENDS = [
    ("torch", "fp32"), ("torch", "bf16"), ("torch compiled", "bf16"), ("onnxruntime", "fp32"),
    ("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8"),
]  # fmt: skip
COMPILED = "torch compiled"  # the torch backend with --compile (torch.compile; needs g++)
# The backends section's models: the bundled demo, the distilled students, the bundled x4.
BACKEND_MODELS = ("demo", "student", "mobile_student", "demo-sr")
CALIBRATION_IMAGES = 8
OPTIONAL_BACKENDS = {"onnxruntime": "onnxruntime", "openvino": "openvino"}  # -> its package
# The CPU flags that decide these figures: vector width, fused multiply-add, int8/bf16 dots.
SIMD_FLAGS = frozenset(
    {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "neon", "bf16"}
)
SR_UPSCALE = {"scale": 4}
# SR train steps: label -> (network, options). The full 23-block RRDB runs at a few seconds
# per step on two CPU cores, so the CPU figure is for a 2-block one (the block is the unit
# that repeats: the ratio between the two steps does not depend on the count).
SR_TRAINING = {
    "srvgg_compact": ("srvgg_compact", SR_UPSCALE),
    "rrdbnet 2 blocks": ("rrdbnet", {**SR_UPSCALE, "num_block": 2}),
}
# SR latency: Real-ESRGAN's compact x4 at its defaults and the bundled demo; full 23-block
# RRDB (tens of seconds a frame on two CPU cores) gets its size only (SR_SIZES).
SR_REALTIME = {
    "srvgg_compact": GeneratorSpec("srvgg_compact", 3, 3, SR_UPSCALE, scale=4),
    "demo-sr": "demo-sr",
}
SR_SIZES = {**SR_REALTIME, "rrdbnet": GeneratorSpec("rrdbnet", 3, 3, SR_UPSCALE, scale=4)}


# --- measuring ---------------------------------------------------------------------------


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_mb(device: str) -> float:
    """Peak memory so far: CUDA allocations, or this process's peak RSS on the CPU."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes vs KiB


def call_times(fn: Callable[[], Any], device: str, warmup: int, iters: int) -> list[float]:
    """Seconds of each of ``iters`` calls after ``warmup`` untimed ones, device synced."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def rate(fn: Callable[[], Any], device: str, warmup: int, iters: int, per_call: int = 1) -> float:
    """Items per second (``per_call`` per call) from the median call time; the median shrugs
    off the stalls other processes on a shared machine cause."""
    return per_call / statistics.median(call_times(fn, device, warmup, iters))


def latencies(fn: Callable[[], Any], device: str, warmup: int, iters: int) -> dict[str, float]:
    """Per-call latency percentiles (ms) and frames/s over ``iters`` timed calls (batch 1)."""
    times = call_times(fn, device, warmup, iters)
    times_ms = sorted(1000 * t for t in times)
    return {
        "p50 ms": statistics.median(times_ms),
        "p95 ms": times_ms[min(len(times_ms) - 1, round(0.95 * (len(times_ms) - 1)))],
        "frames/s": len(times) / sum(times),
    }


# Runs one case in a fresh interpreter: imports this script and writes the case's row as JSON.
_CASE = (
    "import json, sys; sys.path.insert(0, sys.argv[1]); import benchmark; "
    "row = getattr(benchmark, sys.argv[2])(**json.loads(sys.argv[3])); "
    "open(sys.argv[4], 'w').write(json.dumps(row))"
)


def isolated(fn: Callable[..., dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    """Run ``fn(**kwargs)`` in a fresh process, so CUDA and peak RSS start clean.

    A plain interpreter, not multiprocessing's spawn: a spawned child imports this script,
    and torch with it, while multiprocessing prepares it, and OpenVINO then ran the demo at
    half speed on two threads there, with 150 ms stalls through the Translator (why is not
    known; a process that imports torch as it starts, as this one does, runs it at full
    speed)."""
    with tempfile.TemporaryDirectory(prefix="benchmark-case-") as folder:
        row = Path(folder) / "row.json"
        args = [str(Path(__file__).parent), fn.__name__, json.dumps(kwargs), str(row)]
        subprocess.run([sys.executable, "-c", _CASE, *args], check=True)
        return json.loads(row.read_text())


def precisions(device: str) -> list[str]:
    """fp32, plus bf16 where the GPU or CPU has it natively (emulated bf16 is ~10x slower
    than fp32, which is not worth a figure), plus fp16 on CUDA."""
    if device == "cuda":
        return ["fp32", "bf16", "fp16"] if torch.cuda.is_bf16_supported() else ["fp32", "fp16"]
    return ["fp32", "bf16"] if cpu_info().native_bf16 else ["fp32"]


def synthetic_batch(size: int, device: str, seed: int, batch: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 3, size, size, generator=g) * 2 - 1).to(device)


# --- the reference-style training steps ----------------------------------------------------
# What pytorch-CycleGAN-and-pix2pix does per iteration, as written for the PyTorch of its time:
# fp32, contiguous NCHW, zero_grad() that zeroes gradients in place (set_to_none=False),
# single-tensor Adam (foreach=False), requires_grad toggled on D every step, cudnn.benchmark on.


def _requires_grad(nets: list[nn.Module], flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def _adam(params: Any) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999), foreach=False)


def _gan(mode: str, prediction: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.full_like(prediction, 1.0 if real else 0.0)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(prediction, target)
    return F.mse_loss(prediction, target)


def reference_pix2pix(device: str, size: int) -> Callable[[], None]:
    """One reference pix2pix iteration: D on (fake, real) pairs, then G on GAN + 100 * L1."""
    gen, g_opts, d_opts, gan = MODELS["pix2pix"]
    G = translate.build_generator(gen, 3, 3, **g_opts).to(device).train()
    D = translate.build_discriminator("patch", 6, **d_opts).to(device).train()
    opt_g, opt_d = _adam(G.parameters()), _adam(D.parameters())
    real_a, real_b = synthetic_batch(size, device, 0), synthetic_batch(size, device, 1)

    def step() -> None:
        fake_b = G(real_a)
        _requires_grad([D], True)
        opt_d.zero_grad(set_to_none=False)
        loss_d_fake = _gan(gan, D(torch.cat((real_a, fake_b), 1).detach()), False)
        loss_d_real = _gan(gan, D(torch.cat((real_a, real_b), 1)), True)
        ((loss_d_fake + loss_d_real) * 0.5).backward()
        opt_d.step()
        _requires_grad([D], False)
        opt_g.zero_grad(set_to_none=False)
        loss_g_gan = _gan(gan, D(torch.cat((real_a, fake_b), 1)), True)
        (loss_g_gan + F.l1_loss(fake_b, real_b) * 100.0).backward()
        opt_g.step()

    return step


def reference_cyclegan(device: str, size: int) -> Callable[[], None]:
    """One reference CycleGAN iteration: both G on GAN + cycle + identity, then both D."""
    gen, g_opts, d_opts, gan = MODELS["cyclegan"]
    G_A, G_B = (translate.build_generator(gen, 3, 3, **g_opts).to(device) for _ in "AB")
    D_A, D_B = (translate.build_discriminator("patch", 3, **d_opts).to(device) for _ in "AB")
    opt_g = _adam([*G_A.parameters(), *G_B.parameters()])
    opt_d = _adam([*D_A.parameters(), *D_B.parameters()])
    pool_a, pool_b = ImagePool(50), ImagePool(50)
    real_a, real_b = synthetic_batch(size, device, 0), synthetic_batch(size, device, 1)
    lam, idt = 10.0, 0.5

    def d_loss(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        loss = (_gan(gan, D(real), True) + _gan(gan, D(fake.detach()), False)) * 0.5
        loss.backward()
        return loss

    def step() -> None:
        fake_b = G_A(real_a)
        rec_a = G_B(fake_b)
        fake_a = G_B(real_b)
        rec_b = G_A(fake_a)
        _requires_grad([D_A, D_B], False)
        opt_g.zero_grad(set_to_none=False)
        loss_idt = (
            F.l1_loss(G_A(real_b), real_b) * lam * idt + F.l1_loss(G_B(real_a), real_a) * lam * idt
        )
        loss_gan = _gan(gan, D_A(fake_b), True) + _gan(gan, D_B(fake_a), True)
        loss_cycle = F.l1_loss(rec_a, real_a) * lam + F.l1_loss(rec_b, real_b) * lam
        (loss_gan + loss_cycle + loss_idt).backward()
        opt_g.step()
        _requires_grad([D_A, D_B], True)
        opt_d.zero_grad(set_to_none=False)
        d_loss(D_A, real_b, pool_b.query(fake_b))
        d_loss(D_B, real_a, pool_a.query(fake_a))
        opt_d.step()

    return step


REFERENCE_STEPS = {"pix2pix": reference_pix2pix, "cyclegan": reference_cyclegan}


def reference_sr(
    device: str, size: int, network: str, options: dict[str, Any], batch: int
) -> Callable[[], None]:
    """One BasicSR-style ``SRModel.optimize_parameters``: fp32, contiguous NCHW, default Adam,
    ``zero_grad(); l_pix = cri_pix(output, gt); l_pix.backward(); step()``. Its LR input is
    made by the same bicubic degradation our step runs, so the two differ in the step alone."""
    net = build_generator(network, **options).to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.9, 0.99))
    degrade = build_degradation("bicubic", options["scale"]).to(device)
    gt = (synthetic_batch(size, device, 0, batch) + 1) / 2
    seeds = torch.arange(batch)

    def step() -> None:
        lq = degrade(gt, seeds)
        optimizer.zero_grad()
        output = (net(lq * 2 - 1) + 1) / 2  # our networks take [-1, 1]; the loss is on [0, 1]
        l_pix = F.l1_loss(output, gt)
        l_pix.backward()
        optimizer.step()

    return step


# --- our trainers' step -------------------------------------------------------------------


def smooth_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A photo-like test image (smooth shapes plus grain), so that decoding and encoding cost
    what they cost on real images; pure noise would be far slower."""
    coarse = torch.from_numpy(rng.random((1, 3, height // 16, width // 16), dtype=np.float32))
    shapes = F.interpolate(coarse * 255, size=(height, width), mode="bicubic")[0]
    grain = torch.from_numpy(rng.normal(0, 6, (3, height, width)).astype(np.float32))
    return (shapes + grain).clamp(0, 255).byte().permute(1, 2, 0).numpy()


def write_dataset(root: Path, model: str, size: int, count: int = 2) -> None:
    """A tiny dataset of the layout ``model`` trains on: aligned A|B pairs, trainA/trainB, or
    HR images alone (sr)."""
    rng = np.random.default_rng(0)
    for i in range(count):
        if model == "sr":
            write_image(root / "train" / f"{i}.png", smooth_image(rng, size, size))
        elif model == "pix2pix":
            write_image(root / "train" / f"{i}.jpg", smooth_image(rng, size, 2 * size), 95)
        else:
            for domain in "AB":
                write_image(root / f"train{domain}" / f"{i}.jpg", smooth_image(rng, size, size), 95)


def our_step(
    model: str, device: str, precision: str, size: int, workdir: Path, loss: dict | None = None,
    train: dict | None = None, extra: dict[str, Any] | None = None, batch_size: int = 1,
) -> Callable[[], Any]:  # fmt: skip
    """``train_step`` as ``translate train`` sets it up (the Engine builds the networks,
    optimizers, precision and memory format), with the reference defaults (and ``loss``
    and ``train`` keys, e.g. CUT's mode; ``extra`` config sections, e.g. SR's generator) and
    a batch of ``batch_size`` items."""
    from translate.training.configure import from_dict
    from translate.training.engine import Engine

    write_dataset(workdir / "data", model, size, count=max(2, batch_size))
    preprocess = {"mode": "crop", "crop_size": size, "flip": False}
    data = {"root": str(workdir / "data"), "num_workers": 0, "val_size": 1,
            "preprocess": preprocess}  # fmt: skip
    if model == "sr":
        data["degradation"] = "bicubic"
    config = from_dict({
        "model": model,
        "data": data,
        "loss": loss or {},
        "train": {"device": device, "precision": precision, **(train or {})},
        "log": {"tensorboard": False},
        **(extra or {}),
    })  # fmt: skip
    engine = Engine(config, workdir / "run", progress=False)
    layout = torch.channels_last if engine.runtime.channels_last else torch.contiguous_format
    item = torch.utils.data.default_collate([engine.train_set[i] for i in range(batch_size)])
    batch = {
        k: v.to(engine.device).contiguous(memory_format=layout) if torch.is_tensor(v) else v
        for k, v in item.items()
    }
    return lambda: engine.model.train_step(batch, engine.stepper)


# --- the cases, each run in its own process -----------------------------------------------


def train_case(
    model: str, impl: str, precision: str, device: str, size: int, quick: bool,
    loss: dict | None = None, network: str | None = None, batch: int = 1,
) -> dict[str, Any]:  # fmt: skip
    """Iterations/s and peak memory of one train step; ``network`` (a ``SR_TRAINING`` label)
    makes it an SR step of that network at batch ``batch``."""
    torch.backends.cudnn.benchmark = True
    warmup, iters = (1, 3) if quick else (3, 10)
    if model == "pix2pix":  # about ten times faster than CycleGAN
        warmup, iters = warmup * 2, iters * 3
    with tempfile.TemporaryDirectory() as tmp:
        if network is not None:
            name, options = SR_TRAINING[network]
            if impl == "reference":
                step = reference_sr(device, size, name, options, batch)
            else:
                extra = {"generator": {"name": name, "options": options}}
                loss = {"lambda_gan": 0.0}
                step = our_step(
                    model, device, precision, size, Path(tmp), loss, extra=extra, batch_size=batch
                )
        elif impl == "reference":
            step = REFERENCE_STEPS[model](device, size)
        else:
            step = our_step(model, device, precision, size, Path(tmp), loss)
        reset_peak(device)
        it_s = rate(step, device, warmup, iters)
    return {"it/s": it_s, "peak MB": peak_mb(device)}


def _gloo_rank(rank: int, port: int, overlap: bool, size: int, quick: bool, out: Path) -> None:
    """One of the 2 ranks of :func:`distributed_case`: our pix2pix step, timed on rank 0."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
        LOCAL_RANK=str(rank),
    )  # fmt: skip
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))  # the cores split between ranks
    train = {"overlap_grad_reduce": overlap}
    step = our_step("pix2pix", "cpu", "fp32", size, out / str(rank), train=train)
    it_s = rate(step, "cpu", *((2, 6) if quick else (5, 30)))
    if rank == 0:
        (out / "it_s").write_text(str(it_s))
    torch.distributed.destroy_process_group()


def distributed_case(overlap: bool, size: int, quick: bool, **_: Any) -> dict[str, Any]:
    """Our pix2pix step on 2 gloo ranks of this machine's CPU, the gradients all-reduced
    during backward (``overlap``) or in one flat all-reduce after it."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_gloo_rank, args=(port, overlap, size, quick, Path(tmp)), nprocs=2)
        it_s = float((Path(tmp) / "it_s").read_text())
    return {"it/s": it_s, "step ms": 1000 / it_s}


def convert_case(precision: str, device: str, size: int, quick: bool, batch: int) -> dict[str, Any]:
    """convert_folder over PNGs (decode, translate, encode, write) against the bare pix2pix
    generator's forward pass on a tensor already on the device, same batch and precision."""
    count = 16 if quick else 64
    name, options, _, _ = MODELS["pix2pix"]
    spec = GeneratorSpec(name, 3, 3, options)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        src, model_path = Path(tmp, "in"), Path(tmp, "model.safetensors")
        for i in range(count):
            write_image(src / f"{i:04d}.png", smooth_image(rng, size, size))
        save_generators(model_path, {"AtoB": (spec, spec.build())})
        translator = Translator.load(
            model_path, device=device, precision=precision, batch_size=batch
        )
        translator.translate_batch([smooth_image(rng, size, size)] * batch)  # warm-up
        sync(device)
        start = time.perf_counter()
        summary = convert_folder(src, Path(tmp, "out"), translator, progress=False)
        sync(device)
        convert_s = count / (time.perf_counter() - start)
    if summary.converted != count:
        raise RuntimeError(
            f"convert_folder converted {summary.converted} of {count}: {summary.failed}"
        )

    # The same network in the same memory format the Translator uses, so that the ratio is
    # the cost of the pipeline around the forward pass (decode, pad, encode, write).
    generator = spec.build().to(device, memory_format=torch.channels_last).eval()
    autocast = Precision(precision, device).autocast
    forward_s = forward_rate(generator, autocast, device, size, batch, max(2, count // batch))
    return {
        "convert img/s": convert_s,
        "forward img/s": forward_s,
        "convert/forward": convert_s / forward_s,
    }


def loader_case(device: str, size: int, quick: bool, workers: int) -> dict[str, Any]:
    """Images/s that PairedFolder + DataLoader deliver with the reference preprocessing
    (resize to 286/256 of the size, random crop, flip) from aligned JPEGs; worker start-up
    is left out."""
    count = 32 if quick else 128
    rng = np.random.default_rng(0)
    preprocess = Preprocess(load_size=size * 286 // 256, crop_size=size)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(count):
            write_image(Path(tmp, "train", f"{i:04d}.jpg"), smooth_image(rng, size, 2 * size), 95)
        loader = torch.utils.data.DataLoader(
            PairedFolder(tmp, "train", preprocess=preprocess), batch_size=1, shuffle=True,
            num_workers=workers, pin_memory=device == "cuda",
        )  # fmt: skip
        batches = iter(loader)
        next(batches)
        start = time.perf_counter()
        for batch in batches:
            batch["input"].to(device, non_blocking=True)
        sync(device)
        images_s = (count - 1) / (time.perf_counter() - start)
    return {"images/s": images_s}


def _generator_file(model: str, workdir: Path) -> LoadedModel:
    """The real-time model as a loaded generator file (the demo's is bundled)."""
    spec = {**REALTIME, **SR_SIZES}[model]
    if isinstance(spec, str):
        return load_model(spec)
    path = workdir / f"{model}.safetensors"
    save_generators(path, {"AtoB": (spec, spec.build())})
    return load_model(path)


def forward_rate(
    net: nn.Module, autocast: Callable[[], Any], device: str, size: int, batch: int, calls: int
) -> float:
    """Images/s of ``net``'s bare forward pass on a channels-last batch, as the Translator
    runs it: the baseline the converter's and the video's rates are divided by."""
    x = synthetic_batch(size, device, 0, batch).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def forward() -> None:
        with autocast():
            net(x)

    return rate(forward, device, 2, calls, per_call=batch)


def realtime_case(model: str, backend: str, device: str, size: int, quick: bool) -> dict[str, Any]:
    """Batch-1 latency of one generator at size x size: eager PyTorch in ``backend``'s
    precision (channels-last, inference mode, as the Translator runs it), or the ONNX export
    on onnxruntime with as many threads as torch."""
    warmup, iters = (2, 8) if quick else (5, 50)
    x = synthetic_batch(size, device, 0)
    with tempfile.TemporaryDirectory() as tmp:
        generators = _generator_file(model, Path(tmp))
        net = generators.generators["AtoB"]
        macs = count_macs(net, (3, size, size))
        if backend == "onnx":
            import onnxruntime

            path = export_generator(generators, Path(tmp, "g.onnx"), "onnx")
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
            feed = {"input": x.cpu().numpy()}

            def forward() -> None:
                session.run(None, feed)

        else:
            net = net.to(device, memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
            autocast = Precision(backend, device).autocast

            @torch.inference_mode()
            def forward() -> None:
                with autocast():
                    net(x)

        return {"GMAC": macs / 1e9, **latencies(forward, device, warmup, iters)}


def size_case(model: str, size: int) -> dict[str, Any]:
    """Parameters (millions) and GMAC at a size x size input of one generator."""
    with tempfile.TemporaryDirectory() as tmp:
        net = _generator_file(model, Path(tmp)).generators["AtoB"]
    params = sum(p.numel() for p in net.parameters())
    return {"M params": params / 1e6, "GMAC": count_macs(net, (3, size, size)) / 1e9}


def _clip(path: Path, size: int, frames: int, fps: int = 30) -> None:
    """A size x size H.264 clip at ``fps`` with an AAC tone, from moving smooth images."""
    import av

    rng = np.random.default_rng(0)
    base = smooth_image(rng, size, 2 * size)
    with av.open(str(path), "w") as out:
        video = out.add_stream("h264", rate=fps)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        sound = out.add_stream("aac", rate=44100, layout="mono")
        for i in range(frames):
            shift = i * size // frames
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(base[:, shift : shift + size]), format="rgb24"
            )
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        tone = np.sin(np.arange(44100 * frames // fps) * 2 * np.pi * 440 / 44100) * 0.3
        for start in range(0, tone.size, 1024):
            chunk = av.AudioFrame.from_ndarray(
                tone[None, start : start + 1024].astype(np.float32), format="fltp", layout="mono"
            )
            chunk.sample_rate, chunk.pts = 44100, start
            out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))


def video_case(precision: str, device: str, size: int, quick: bool, batch: int) -> dict[str, Any]:
    """``convert_video`` frames/s on an H.264 clip with audio (decode, translate, encode,
    mux) against the bare student's forward pass at the same batch and precision."""
    frames = 24 if quick else 120
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp, "clip.mp4")
        _clip(clip, size, frames)
        translator = Translator(
            _generator_file("student", Path(tmp)), device=device, precision=precision,
            batch_size=batch,
        )  # fmt: skip
        translator.translate_batch([smooth_image(np.random.default_rng(1), size, size)] * batch)
        sync(device)
        start = time.perf_counter()
        converted = convert_video(clip, Path(tmp, "out.mp4"), translator)
        sync(device)
        video_s = converted / (time.perf_counter() - start)
        if converted != frames:
            raise RuntimeError(f"convert_video converted {converted} of {frames} frames")
        autocast, calls = translator.precision.autocast, max(2, frames // batch)
        forward_s = forward_rate(translator.generator, autocast, device, size, batch, calls)
    return {
        "video frames/s": video_s,
        "forward frames/s": forward_s,
        "video/forward": video_s / forward_s,
    }


def backend_case(
    model: str, backend: str, precision: str, threads: int, size: int, quick: bool,
    folder: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """``model`` through the Translator with ``backend`` and ``precision`` on ``threads``
    CPU threads: the batch-1 latency of one size x size image (``translate_tensor``:
    padding and the value range included) and, given the PNG ``folder``, ``convert_folder``
    images/s over it. Graphs come from the cache (exported before timing on first use)."""
    warmup, iters = (2, 8) if quick else (5, 30)
    if model == "demo-sr":  # 8.2 GMAC a 256 px frame: fewer calls, the same median
        warmup, iters = (1, 4) if quick else (2, 10)
    rng = np.random.default_rng(0)
    load = os.getloadavg()[0]
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)  # the onnxruntime and openvino runners take torch's count
    try:
        with tempfile.TemporaryDirectory() as tmp:
            int8 = {}
            if precision == "int8":  # no floor: the point is the speed, the PSNR is shown
                for i in range(CALIBRATION_IMAGES):
                    write_image(Path(tmp, "cal", f"{i}.png"), smooth_image(rng, size, size))
                int8 = {"calibrate": str(Path(tmp, "cal")), "min_psnr": 0.0}
            compiles = backend == COMPILED
            translator = Translator(
                _generator_file(model, Path(tmp)), device="cpu", precision=precision,
                backend="torch" if compiles else backend, batch_size=1, compile=compiles, **int8,
            )  # fmt: skip
            image = torch.from_numpy(smooth_image(rng, size, size)).permute(2, 0, 1)
            start = time.perf_counter()
            translator.translate_tensor(image)  # compiles, exports or warms up
            first = time.perf_counter() - start
            timed = latencies(lambda: translator.translate_tensor(image), "cpu", warmup, iters)
            row = {"threads": threads, "load": load, "first call s": first, **timed}
            if translator.int8 is not None:
                row["int8 PSNR"] = translator.int8.psnr
            if folder is not None:
                count = len(list(Path(folder).glob("*.png")))
                start = time.perf_counter()
                summary = convert_folder(folder, Path(tmp, "out"), translator, progress=False)
                row["convert img/s"] = count / (time.perf_counter() - start)
                if summary.converted != count:
                    raise RuntimeError(f"convert_folder converted {summary.converted} of {count}")
    finally:
        torch.set_num_threads(previous)
    return row


# The demo's converter as `translate convert demo IN OUT` runs it: with its defaults
# (precision auto, PNGs at zlib level 1), and with the settings it ran at before they
# changed (ab84310: `--backend torch --precision fp32`, PNGs at level 6).
# -> (Translator options, convert_folder options)
CONVERT_SETTINGS = {
    "defaults": ({}, {}),
    "before: fp32, png 6": ({"precision": "fp32"}, {"png_compression": 6}),
}


def convert_settings_case(settings: str, folder: str) -> dict[str, Any]:
    """``convert_folder`` images/s of the demo over ``folder`` with ``CONVERT_SETTINGS``'s
    options, model load included and no warm-up, as on the command line."""
    translating, writing = CONVERT_SETTINGS[settings]
    count = len(list(Path(folder).glob("*.png")))
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        translator = Translator.load("demo", device="cpu", **translating)
        summary = convert_folder(folder, Path(tmp, "out"), translator, progress=False, **writing)
        seconds = time.perf_counter() - start
        threads = torch.get_num_threads()
    if summary.converted != count:
        raise RuntimeError(f"convert_folder converted {summary.converted} of {count}")
    return {
        "precision": translator.precision.name,
        "threads": threads,
        "load": load,
        "png level": writing.get("png_compression", ConvertOptions().png_compression),
        "convert img/s": count / seconds,
    }


def png_folder(root: Path, count: int, size: int) -> Path:
    """``count`` photo-like size x size PNGs in ``root``/in, the converter's input."""
    rng = np.random.default_rng(1)
    for i in range(count):
        write_image(root / "in" / f"{i:04d}.png", smooth_image(rng, size, size))
    return root / "in"


def ray_case(actors: int, size: int, quick: bool) -> dict[str, Any]:
    """The pix2pix generator converting one folder of PNGs (the same seeded images in every
    case): locally (``actors`` 0: ``convert_folder`` with torch's default threads) or on a
    fresh local Ray instance with ``actors`` actors. ``img/s`` counts the whole call (Ray:
    actor start and model load included); ``steady img/s`` the outputs between the first
    and the last written, from their modification times."""
    from translate.conversion.ray import convert_on_ray

    count = 24 if quick else 96
    name, options, _, _ = MODELS["pix2pix"]
    spec = GeneratorSpec(name, 3, 3, options)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst, model = Path(tmp, "in"), Path(tmp, "out"), Path(tmp, "model.safetensors")
        for i in range(count):
            write_image(src / f"{i:04d}.png", smooth_image(rng, size, size))
        torch.manual_seed(0)
        save_generators(model, {"AtoB": (spec, spec.build())})
        translating = TranslatorOptions(device="cpu", precision="fp32")
        options = ConvertOptions(progress=False)
        start = time.perf_counter()
        if actors:
            summary = convert_on_ray(src, dst, model, translating, options, actors=actors)
        else:
            summary = convert_folder(src, dst, Translator.load(model, translating), options)
        elapsed = time.perf_counter() - start
        written = sorted(p.stat().st_mtime for p in dst.glob("*.png"))
    if summary.converted != count:
        raise RuntimeError(f"converted {summary.converted} of {count}: {summary.failed}")
    return {
        "img/s": count / elapsed,
        "steady img/s": (count - 1) / (written[-1] - written[0]),
        "run s": elapsed,
    }


# --- report ---------------------------------------------------------------------------------


def machine(device: str) -> dict[str, Any]:
    cpu = cpu_info()
    info = {
        "cpu": cpu.model, "cpu capability": cpu.capability, "native bf16": cpu.native_bf16,
        "cpu flags": " ".join(sorted(cpu.flags & SIMD_FLAGS)) or "unknown",
        "cores": os.cpu_count(), "torch threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(), "device": device,
    }  # fmt: skip
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def table(title: str, rows: list[dict[str, Any]]) -> str:
    """A plain-text table; floats get three significant figures."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:#.3g}" if abs(value) < 100 else f"{value:.0f}"
        return str(value)

    columns = list(dict.fromkeys(key for row in rows for key in row))
    body = [[cell(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in body)) for i, c in enumerate(columns)]
    lines = [title, "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(line.rstrip() for line in lines)


def add_ratios(results: dict[str, list[dict[str, Any]]]) -> None:
    """Our steps against the reference step of the same model, the loader against our pix2pix
    fp32 step (batch 1, so iterations/s = images/s), CUT/FastCUT against CycleGAN at the
    same precision, and each backend's latency against torch fp32's, where both sides were
    measured."""
    train = results.get("training", [])
    reference = {r["model"]: r["it/s"] for r in train if r["step"] == "reference"}
    for row in train:
        row["vs reference"] = row["it/s"] / reference[row["model"]]
    ours = [r["it/s"] for r in train if r["model"] == "pix2pix" and r["step"] == "ours"]
    for row in results.get("loader", []) if ours else []:
        row["pix2pix train it/s"] = ours[0]
        row["loader/train"] = row["images/s"] / ours[0]
    backends = results.get("backends", [])
    torch_fp32 = {
        (r["model"], r["threads"]): r
        for r in backends
        if (r.get("backend"), r["precision"]) == ("torch", "fp32")
    }
    before = [r for r in backends if r.get("convert") == "before: fp32, png 6"]
    for row in backends:
        if "convert" in row:  # the converter's settings against its settings before
            if before:
                row["convert vs before"] = row["convert img/s"] / before[0]["convert img/s"]
            continue
        base = torch_fp32.get((row["model"], row["threads"]))
        if base is not None:
            row["speed-up vs torch fp32"] = base["p50 ms"] / row["p50 ms"]
            if "convert img/s" in row and "convert img/s" in base:
                row["convert vs torch fp32"] = row["convert img/s"] / base["convert img/s"]
    sr_steps = [r for r in results.get("sr", []) if "step" in r]
    basicsr = {r["network"]: r["it/s"] for r in sr_steps if r["step"] == "BasicSR-style"}
    for row in sr_steps:
        row["vs BasicSR"] = row["it/s"] / basicsr[row["network"]]
    unpaired = results.get("unpaired", [])
    cyclegan = {r["precision"]: r for r in unpaired if r["trainer"] == "CycleGAN"}
    for row in unpaired:
        base = cyclegan.get(row["precision"])
        if base is not None:
            row["it/s vs CycleGAN"] = row["it/s"] / base["it/s"]
            row["memory vs CycleGAN"] = row["peak MB"] / base["peak MB"]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Training, converter and data loader speed.")
    parser.add_argument("--quick", action="store_true", help="fewer iterations: minutes on 2 cores")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--batch", type=int, default=4, help="converter batch size")
    parser.add_argument(
        "--workers", type=int, default=min(4, os.cpu_count() or 1), help="data loader workers"
    )
    parser.add_argument(
        "--only", choices=SECTIONS, action="append", help="run this section (repeatable)"
    )
    parser.add_argument(
        "--models",
        choices=BACKEND_MODELS,
        action="append",
        help="backends: measure only this model (repeatable); default: all",
    )
    parser.add_argument(
        "--threads",
        type=int,
        action="append",
        help="backends: CPU threads (repeatable); default: 1 and 2",
    )
    parser.add_argument(
        "--skip-compiled",
        action="store_true",
        help="backends: leave out the torch.compile rows (each compiles for 10-60 s first)",
    )
    parser.add_argument(
        "--convert-images",
        type=int,
        default=192,
        help="backends: PNGs in the demo's converter folder (0: no converter figures)",
    )
    parser.add_argument(
        "--precision", choices=("fp32", "bf16", "fp16"), action="append",
        help="measure only this precision (repeatable); default: what the device runs well",
    )  # fmt: skip
    args = parser.parse_args(argv)
    only = set(args.only or SECTIONS)
    try:
        device = resolve_device(args.device, use="train").type
    except ValueError as exc:
        parser.error(f"--device: {exc}")
    if args.size % 256 and only & {"training", "converter"}:
        parser.error(f"--size {args.size}: unet_256 needs a multiple of 256")
    if args.size % 4:
        parser.error(f"--size {args.size}: resnet_9blocks needs a multiple of 4")

    def measured(default: list[str]) -> list[str]:
        return [p for p in default if not args.precision or p in args.precision]

    common = {"device": device, "size": args.size, "quick": args.quick}
    cases: list[tuple[str, dict[str, Any], Callable[..., dict[str, Any]], dict[str, Any]]] = []
    for model in MODELS:
        label = {"model": model, "step": "reference", "precision": "fp32"}
        cases.append(
            (
                "training",
                label,
                train_case,
                {"model": model, "impl": "reference", "precision": "fp32", **common},
            )
        )
        for precision in measured(precisions(device)):
            label = {"model": model, "step": "ours", "precision": precision}
            cases.append(
                (
                    "training",
                    label,
                    train_case,
                    {"model": model, "impl": "ours", "precision": precision, **common},
                )
            )
    for precision in measured(precisions(device)):
        label = {"precision": precision, "batch": args.batch}
        cases.append(
            (
                "converter",
                label,
                convert_case,
                {"precision": precision, "batch": args.batch, **common},
            )
        )
    cases.append(("loader", {"workers": args.workers}, loader_case,
                  {"workers": args.workers, **common}))  # fmt: skip
    # bf16 on every CPU: its cost without native support is a figure worth having here.
    unpaired_precisions = precisions(device) if device == "cuda" else ["fp32", "bf16"]
    for precision in measured(unpaired_precisions):
        for trainer, (model, loss) in UNPAIRED.items():
            kwargs = {"model": model, "impl": "ours", "precision": precision, "loss": loss}
            label = {"trainer": trainer, "precision": precision}
            cases.append(("unpaired", label, train_case, {**kwargs, **common}))
    for model in REALTIME:
        for backend in [*measured(precisions(device)), "onnx"]:
            cases.append(("realtime", {"model": model, "backend": backend}, realtime_case,
                          {"model": model, "backend": backend, **common}))  # fmt: skip
    for network in SR_TRAINING:
        common_sr = {"model": "sr", "network": network, "batch": args.batch, **common}
        label = {"network": network, "step": "BasicSR-style", "precision": "fp32"}
        cases.append(("sr", label, train_case, {"impl": "reference", "precision": "fp32",
                                                **common_sr}))  # fmt: skip
        for precision in measured(precisions(device)):
            label = {"network": network, "step": "ours", "precision": precision}
            cases.append(("sr", label, train_case, {"impl": "ours", "precision": precision,
                                                    **common_sr}))  # fmt: skip
    for model in SR_SIZES:
        cases.append(("sr", {"model": model}, size_case, {"model": model, "size": args.size}))
    for model in SR_REALTIME:
        for backend in [*measured(precisions(device)), "onnx"]:
            cases.append(("sr", {"model": model, "backend": backend}, realtime_case,
                          {"model": model, "backend": backend, **common}))  # fmt: skip
    for precision in measured(precisions(device)):
        cases.append(("video", {"precision": precision, "batch": args.batch}, video_case,
                      {"precision": precision, "batch": args.batch, **common}))  # fmt: skip
    # The demo's converter folder, made once for all its rows (removed after the run).
    workdir = Path(tempfile.mkdtemp(prefix="benchmark-"))
    folder = None
    if "backends" in only and args.convert_images:
        folder = png_folder(workdir, args.convert_images, args.size)
    for backend, precision in BACKENDS:
        package = OPTIONAL_BACKENDS.get(backend)
        if package is not None and importlib.util.find_spec(package) is None:
            print(f"backends: {backend} skipped ({package} is not installed)", file=sys.stderr)
            continue
        if backend == COMPILED and (args.skip_compiled or shutil.which("g++") is None):
            continue
        if precision not in [*precisions("cpu"), "int8"]:  # the CPU, whatever --device says
            continue
        for model in args.models or BACKEND_MODELS:
            for threads in args.threads or (1, 2):
                label = {"model": model, "backend": backend, "precision": precision}
                converts = model == "demo" and folder is not None
                kwargs = {"threads": threads, "size": args.size, "quick": args.quick,
                          "folder": str(folder) if converts else None}  # fmt: skip
                cases.append(("backends", label, backend_case, {**label, **kwargs}))
    if folder is not None and "demo" in (args.models or BACKEND_MODELS):
        for settings in CONVERT_SETTINGS:
            cases.append(("backends", {"model": "demo", "convert": settings},
                          convert_settings_case, {"settings": settings,
                                                  "folder": str(folder)}))  # fmt: skip
    if "ray" in only:  # the same folder locally and on 1 and 2 actors, in this run
        for actors in (0, 1, 2):
            label = {"runner": "ray" if actors else "local", "actors": actors or "-"}
            cases.append(("ray", label, ray_case, {"actors": actors, "size": args.size,
                                                   "quick": args.quick}))  # fmt: skip
    for overlap in (False, True):  # gloo on the CPU whatever --device says
        cases.append(("distributed", {"all-reduce": "overlapped" if overlap else "flat"},
                      distributed_case, {"overlap": overlap, **common}))  # fmt: skip
    cases = [case for case in cases if case[0] in only]

    results: dict[str, Any] = {"machine": machine(device), "quick": args.quick, "size": args.size}
    sections: dict[str, list[dict[str, Any]]] = {name: [] for name in SECTIONS if name in only}
    try:
        for section, label, fn, kwargs in tqdm(cases, desc="benchmark", unit="case"):
            sections[section].append({**label, **isolated(fn, **kwargs)})
    finally:
        shutil.rmtree(workdir)
    add_ratios(sections)
    results.update(sections)

    info = results["machine"]
    print(", ".join(f"{k}: {v}" for k, v in info.items()) + (" (quick)" if args.quick else ""))
    side = f"{args.size}x{args.size}"
    titles = {
        "training": f"training, {side}, batch 1",
        "converter": f"converter, {side} PNGs",
        "loader": f"data loader, {side} crops",
        "unpaired": f"CUT and FastCUT against CycleGAN, {side}, batch 1",
        "realtime": f"real time, {side}, batch 1",
        "video": f"video, {side} H.264 with AAC audio, student",
        "backends": f"backends through the Translator, {side} (demo-sr: x4), batch 1; "
        f"demo converting {args.convert_images} PNGs",
        "ray": f"conversion on Ray Data against the local converter, pix2pix, {side} PNGs, fp32",
        "distributed": f"pix2pix on 2 gloo ranks (CPU), {side}, batch 1 per rank",
        "sr": f"super-resolution x4: train steps at {side} HR crops, batch {args.batch}; "
        f"latency at {side} input, batch 1",
    }
    for name, rows in sections.items():
        if rows:
            print(table(f"\n{titles[name]}", rows))
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=2))
        print(f"\nwrote {args.json}")
    return results


if __name__ == "__main__":
    main()
