"""The training engine: steps change weights, runs learn, files, config errors, CLI."""

from __future__ import annotations

import copy
import errno
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from conftest import AVX2, NATIVE_BF16
from training_helpers import SIZE, join_as, make_engine, resumed_run, smooth_image, tiny, weights

from translate.cli import main
from translate.data.images import read_image, write_image
from translate.models.loading import resolve_model_path
from translate.models.model_file import CHECKPOINT_KEY, generators_from_checkpoint, load_generators
from translate.training import config as config_module
from translate.training import engine
from translate.training.checkpoint import latest_state, load_newest_state, load_state
from translate.training.config import ScheduleConfig
from translate.training.configure import from_dict, load_config
from translate.training.ema import WeightAverage
from translate.training.engine import Engine, _to_device
from translate.training.monitor import WARMUP_STEPS, monitor_warnings
from translate.training.report import RunReport, metric_panel
from translate.training.schedules import LinearDecay, build_scheduler, decay_start

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("model", ["pix2pix", "cyclegan"])
def test_one_step_changes_every_network(data: Path, tmp_path: Path, model: str) -> None:
    t = make_engine(tiny(model, data), tmp_path)
    before = weights(t)
    batch = _to_device(next(iter(t.loader)), t.device, False)
    losses = t.model.train_step(batch, t.stepper)
    assert all(torch.isfinite(v) for v in losses.values())
    nets = {"pix2pix": ("G", "D"), "cyclegan": ("G_AB", "G_BA", "D_A", "D_B")}[model]
    after = t.model.state_dict()
    for net in nets:
        keys = [k for k in before if k.startswith(f"{net}.") and k.endswith("weight")]
        assert keys and any(not torch.equal(before[k], after[k]) for k in keys), net


def test_d_steps_update_the_generator_every_kth_batch(data: Path, tmp_path: Path) -> None:
    t = make_engine(tiny("pix2pix", data, optim={"d_steps": 2}), tmp_path)
    batch = _to_device(next(iter(t.loader)), t.device, False)
    g_before = [p.clone() for p in t.model.G.parameters()]
    losses = t.model.train_step(batch, t.stepper, update_g=False)
    assert set(losses) == {"D"}
    assert all(torch.equal(a, b) for a, b in zip(g_before, t.model.G.parameters(), strict=True))


@pytest.mark.parametrize(
    ("model", "loss", "steps", "ngf"), [("pix2pix", "G_L1", 30, 4), ("cyclegan", "G_cycle", 60, 8)]
)
def test_short_run_lowers_the_loss(
    data: Path, tmp_path: Path, model: str, loss: str, steps: int, ngf: int
) -> None:
    """Inverting colours (pix2pix) and reconstructing 16 px blobs (CycleGAN's cycle) are
    easy: the loss must fall clearly within a few dozen steps."""
    config = tiny(
        model,
        data,
        optim={"lr_g": 0.002, "lr_d": 0.002},
        schedule={"epochs": 50, "decay_epochs": 0},
        train={"batch_size": 4, "max_steps": steps},
        log={"every": 5, "eval_every": 1000, "checkpoint_every": 1000, "tensorboard": False},
    )
    config["generator"]["options"]["ngf"] = ngf
    t = make_engine(config, tmp_path)
    t.fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    values = [r[loss] for r in records if loss in r]
    assert len(values) == steps // 5
    assert values[-1] < 0.85 * values[0]


def test_run_directory_and_generator_files(data: Path, tmp_path: Path) -> None:
    config = tiny("pix2pix", data, log={"every": 1, "eval_every": 2, "checkpoint_every": 2})
    config["log"]["keep"] = 1
    t = make_engine(config, tmp_path)
    summary = t.fit()
    assert summary["steps"] == 3
    for name in ("config.yaml", "metrics.jsonl", "index.html", "losses.png"):
        assert (tmp_path / name).is_file(), name
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["state_3.pt"]
    assert list((tmp_path / "samples").glob("*.png"))
    gen = load_generators(tmp_path / "generator_latest.safetensors")
    assert gen.preprocess.transforms.crop_size == SIZE and gen.preprocess.input_channels == 3
    assert gen.training["model"] == "pix2pix" and gen.training["steps"] == 3
    assert gen.training["epochs"] == 1  # 3 of epoch 1's 4 batches: counted as the bar counts
    best = load_generators(tmp_path / "generator_best.safetensors")
    assert "val_L1" in best.training["best_val"]
    x = torch.zeros(1, 3, SIZE, SIZE)
    t.model.G.eval()
    assert torch.allclose(gen.generators["AtoB"](x), t.model.G(x))
    # the resolved config reloads to the same config
    assert load_config(tmp_path / "config.yaml") == t.config


def test_linear_schedule_matches_the_reference() -> None:
    rule = LinearDecay(epochs=100, decay_epochs=100)
    assert rule(0) == rule(99) == 1.0
    assert rule(100) == pytest.approx(1 - 1 / 101)
    assert rule(199) == pytest.approx(1 / 101)


@pytest.mark.parametrize("policy", ["linear", "step", "cosine"])
def test_decay_start_is_the_first_epoch_at_a_lower_rate(policy: str) -> None:
    schedule = ScheduleConfig(policy=policy, epochs=3, decay_epochs=4, step_size=2)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = build_scheduler(optimizer, schedule)
    rates = []
    for _ in range(schedule.epochs + schedule.decay_epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    start = decay_start(schedule)
    assert start is not None and rates[:start] == [1.0] * start and rates[start] < 1.0


def test_cli_trains_and_resumes(data: Path, tmp_path: Path) -> None:
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny("pix2pix", data)))
    run_dir = tmp_path / "run"
    runner = CliRunner()
    args = ["train", str(config_path), "--run-dir", str(run_dir), "--no-progress"]
    result = runner.invoke(main, [*args, "--set", "train.max_steps=2"])
    assert result.exit_code == 0, result.output
    assert f"run directory: {run_dir}" in result.output
    assert (run_dir / "checkpoints" / "state_2.pt").is_file()
    result = runner.invoke(
        main, ["train", "--resume", str(run_dir), "--no-progress", "--set", "train.max_steps=4"]
    )
    assert result.exit_code == 0, result.output
    assert (run_dir / "checkpoints" / "state_4.pt").is_file()
    result = runner.invoke(main, args)
    assert result.exit_code != 0 and "already holds a run" in result.output
    result = runner.invoke(
        main, ["train", "--resume", str(run_dir), "--set", "generator.options.ngf=8"]
    )
    assert result.exit_code != 0 and "do not fit this config" in result.output


def _records(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_resume_skips_unreadable_checkpoints_and_drops_later_metrics(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A newest checkpoint cut to 0 bytes (a kill mid-write on some filesystems) or full of
    garbage is skipped with its reason; the run resumes from the newest one that loads, and
    the metrics its previous attempt logged after that step are dropped, not repeated."""
    config = tiny("pix2pix", data, log={"every": 1, "checkpoint_every": 2, "keep": 5})
    config["train"]["max_steps"] = 6
    make_engine(config, tmp_path).fit()
    checkpoints = tmp_path / "checkpoints"
    (checkpoints / "state_6.pt").write_bytes(b"")
    (checkpoints / "state_4.pt").write_bytes(b"not a zip file")
    capsys.readouterr()
    resumed = make_engine(config, tmp_path, resume=True)
    assert resumed.step == 2
    err = capsys.readouterr().err
    assert "state_6.pt: not a readable training checkpoint (empty file, 0 bytes)" in err
    assert "state_4.pt: not a readable training checkpoint (" in err
    assert "resuming from state_2.pt" in err
    assert max(r["step"] for r in _records(tmp_path)) == 2
    resumed.fit()
    losses = [r["step"] for r in _records(tmp_path) if "G_L1" in r]
    assert losses == [1, 2, 3, 4, 5, 6]
    for path in checkpoints.glob("*.pt"):
        path.write_bytes(b"")
    with pytest.raises(ValueError, match="no checkpoint loads: .*state_6.pt.*0 bytes"):
        make_engine(config, tmp_path, resume=True)


def test_a_checkpoint_missing_an_entry_is_refused_in_one_line(data: Path, tmp_path: Path) -> None:
    """A readable checkpoint without an entry the engine restores (another version's, or a
    hand-edited one) stops the resume with the file and the entry named, not a KeyError."""
    config = tiny("pix2pix", data, log={"checkpoint_every": 2})
    config["train"]["max_steps"] = 2
    make_engine(config, tmp_path).fit()
    path = tmp_path / "checkpoints" / "state_2.pt"
    state = torch.load(path, weights_only=False)
    del state["run_seconds"]
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"state_2.pt: no 'run_seconds' entry: written by"):
        make_engine(config, tmp_path, resume=True)


def test_a_damaged_pickle_is_skipped_in_one_line(tmp_path: Path) -> None:
    """A byte of the newest checkpoint's pickle flipped (torch's zip check passes, its
    weights-only unpickler then fails in ten lines): one line naming the file and the
    damaged record."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for step in (2, 4):
        torch.save({"model": {"w": torch.zeros(3)}, "step": step}, folder / f"state_{step}.pt")
    data = (folder / "state_4.pt").read_bytes()
    opcode = data.index(b"\x80\x02}") + 3  # after PROTO 2 and EMPTY_DICT
    (folder / "state_4.pt").write_bytes(data[:opcode] + b"\xff" + data[opcode + 1 :])
    path, state, skipped = load_newest_state(tmp_path)
    assert path.name == "state_2.pt" and state["step"] == 2
    assert skipped == [
        f"{folder / 'state_4.pt'}: not a readable training checkpoint "
        "(Bad CRC-32 for file 'state_4/data.pkl')"
    ]


def _train_until_the_disk_fills(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checkpoints_that_fit: int
) -> tuple[list[str], Any]:
    """``translate train`` for 4 steps, a checkpoint every 2, on a disk where the checkpoint
    after ``checkpoints_that_fit`` of them fills up halfway: (its arguments, the result)."""
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny("pix2pix", data, log={"checkpoint_every": 2})))
    real_save = torch.save
    saves = []

    def fills_the_disk(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        saves.append(f)
        if len(saves) <= checkpoints_that_fit:
            return real_save(obj, f, *args, **kwargs)
        f.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", fills_the_disk)
    args = ["train", str(config_path), "--run-dir", str(tmp_path / "run"), "--no-progress"]
    return args, CliRunner().invoke(main, [*args, "--set", "train.max_steps=4"])


def test_full_disk_is_one_line_naming_the_folder(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second checkpoint meets a full disk halfway: one line naming the run folder,
    exit 1, the first checkpoint intact and no partial file left."""
    _, result = _train_until_the_disk_fills(data, tmp_path, monkeypatch, 1)
    run_dir = tmp_path / "run"
    assert result.exit_code == 1, result.output
    error = result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.output and result.stderr.count("Error") == 1
    assert error.startswith(f"Error: {run_dir}: No space left on device; training stopped")
    assert "translate train --resume" in error
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["state_2.pt"]
    assert load_state(run_dir / "checkpoints" / "state_2.pt")["step"] == 2


def test_full_disk_at_the_first_checkpoint_says_there_is_nothing_to_resume(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No checkpoint was written: the line must not promise intact ones or a --resume."""
    args, result = _train_until_the_disk_fills(data, tmp_path, monkeypatch, 0)
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: {tmp_path / 'run'}: No space left on device; training stopped at step 2, "
        "before its first checkpoint, so there is nothing to resume; free space, then run the "
        "same command again"
    )
    monkeypatch.undo()  # space freed
    rerun = CliRunner().invoke(main, [*args, "--set", "train.max_steps=1"])  # as it says
    assert rerun.exit_code == 0, rerun.output


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.max_steps=-1", "'train.max_steps': must be at least 1, got -1"),
        ("train.max_minutes=0", "'train.max_minutes': must be a positive number of minutes"),
        ("generator.options.ngf=-4", "'generator.options.ngf': must be 0 or more, got -4"),
        (
            "generator.options.ngf='24'",
            "'generator.options.ngf': expected int (like the default 64), got '24'",
        ),
        ("discriminator.options.n_layers=0", "n_layers must be >= 1; got 0"),
    ],
)
def test_invalid_settings_name_their_key(
    data: Path, tmp_path: Path, override: str, message: str
) -> None:
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny("pix2pix", data)))
    args = ["train", str(config_path), "--run-dir", str(tmp_path / "run"), "--set", override]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.input_channels=5"], "--set data.input_channels=5: config key "
         "'data.input_channels': 5 is not one of 1, 2, 3, 4"),
        (["train.max_steps=2", "train.max_step=5"], "--set train.max_step=5: unknown config "
         "key 'train.max_step'; did you mean 'max_steps' or 'max_minutes'?"),
        (["optim.lr_g"], "--set optim.lr_g: expected key=value"),
    ],
)  # fmt: skip
def test_an_error_a_set_brings_names_that_set_not_the_file(
    data: Path, tmp_path: Path, overrides: list[str], message: str
) -> None:
    """The file is valid: the error is the override's, one line, no traceback."""
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny("pix2pix", data)))
    sets = [arg for assignment in overrides for arg in ("--set", assignment)]
    result = CliRunner().invoke(main, ["train", str(config_path), *sets])
    assert result.exit_code == 1 and f"Error: {message}" in result.output, result.output
    assert str(config_path) not in result.output and "Traceback" not in result.output


def test_an_error_of_the_file_names_the_file_whatever_the_sets(data: Path, tmp_path: Path) -> None:
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny("pix2pix", data, train={"max_step": 5})))
    with pytest.raises(ValueError) as error:
        load_config(config_path, ["train.seed=3"])
    assert str(error.value).startswith(f"{config_path}: unknown config key 'train.max_step'")


def test_stdout_has_results_and_no_progress_logs_losses_to_stderr(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_path = tmp_path / "tiny.yaml"
    config = tiny("pix2pix", data, log={"every": 2, "eval_every": 2, "tensorboard": False})
    config["train"]["max_steps"] = 4
    config_path.write_text(yaml.safe_dump(config))
    monkeypatch.setattr(engine, "monitor_warnings", lambda *a, **k: ["outputs collapsed"])
    run_dir = tmp_path / "run"
    args = ["train", str(config_path), "--run-dir", str(run_dir), "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    # the file `translate convert RUN_DIR` uses, and one epoch in the singular
    assert result.stdout.splitlines() == [
        f"run directory: {run_dir}",
        f"done: 4 steps, 1 epoch; generator: {run_dir / 'generator_best.safetensors'}",
    ]
    losses = [line for line in result.stderr.splitlines() if "G_L1" in line]
    assert [line.split(":")[0] for line in losses] == ["step 2, epoch 1", "step 4, epoch 1"]
    assert "step 2: outputs collapsed" in result.stderr
    # each evaluation's scores, as metrics.jsonl records them
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for record in (r for r in records if "val_L1" in r):
        scores = ", ".join(f"{k} {record[k]:.4g}" for k in ("val_L1", "val_PSNR", "val_SSIM"))
        assert f"step {record['step']}, epoch 1: {scores}\n" in result.stderr


def test_unpaired_evaluations_print_the_monitors(data: Path, tmp_path: Path) -> None:
    config = tiny("cyclegan", data, log={"every": 2, "eval_every": 2, "tensorboard": False})
    config["train"]["max_steps"] = 2
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    args = ["train", str(config_path), "--run-dir", str(run_dir), "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    # unpaired trainers declare a best metric too (CycleGAN: val_cycle_L1)
    assert result.stdout.splitlines()[-1].endswith(
        f"generator: {run_dir / 'generator_best.safetensors'}"
    )
    record = next(
        json.loads(line)
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
        if "d_acc_real" in line
    )
    monitors = ", ".join(
        f"{k} {record[k]:.4g}" for k in ("d_acc_real", "d_acc_fake", "diversity_ratio")
    )
    assert f"step 2, epoch 1: {monitors}\n" in result.stderr


@pytest.mark.parametrize(("max_steps", "epochs", "warned"), [(3, 2, True), (5, 1, False)])
def test_the_bar_counts_to_max_steps_and_warns_when_the_decay_never_starts(
    data: Path, tmp_path: Path, max_steps: int, epochs: int, warned: bool
) -> None:
    """4 batches an epoch, 4 epochs, linear decay from epoch ``epochs + 1``: 3 steps end in
    epoch 1, before it; 5 end in epoch 2, where it has started."""
    config = tiny(
        "pix2pix",
        data,
        schedule={"epochs": epochs, "decay_epochs": 4 - epochs},
        train={"batch_size": 2, "max_steps": max_steps},
        log={"every": 1, "eval_every": max_steps, "tensorboard": False},
    )
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config))
    args = ["train", str(config_path), "--run-dir", str(tmp_path / "run")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"| {max_steps}/{max_steps} " in result.stderr  # the run's one bar, in steps
    warning = "ends the run in epoch 1 of 4, before the linear learning-rate decay starts (epoch 3)"
    assert result.stderr.count(warning) == warned
    assert ("learning-rate decay starts" in result.stderr) == warned
    assert "val_L1=" in result.stderr  # the last evaluation's scores on the bar


def test_monitor_warnings_wait_for_the_warm_up() -> None:
    fooled = {"d_acc_real": 0.9, "d_acc_fake": 0.01}
    assert monitor_warnings(fooled, step=2) == []
    assert monitor_warnings(fooled, step=WARMUP_STEPS - 1) == []
    assert "fools the discriminator" in monitor_warnings(fooled, step=WARMUP_STEPS)[0]


def test_default_loader_workers_never_exceed_the_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_module, "available_cpus", lambda: 2)
    assert from_dict({}).data.num_workers == 2
    monkeypatch.setattr(config_module, "available_cpus", lambda: 64)
    assert from_dict({}).data.num_workers == 4
    assert from_dict({"data": {"num_workers": 6}}).data.num_workers == 6  # asked for


def test_reference_configs_load_with_paper_defaults() -> None:
    p2p = load_config(CONFIGS / "pix2pix_facades.yaml")
    assert p2p.generator.name == "unet_256" and p2p.loss.lambda_l1 == 100
    assert p2p.loss.gan_mode == "vanilla" and p2p.optim.lr_g == 2e-4 and p2p.optim.beta1 == 0.5
    cyc = load_config(CONFIGS / "cyclegan_horse2zebra.yaml")
    assert cyc.generator.name == "resnet_9blocks" and cyc.loss.gan_mode == "lsgan"
    assert cyc.discriminator.pool_size == 50 and cyc.loss.lambda_identity == 0.5
    for name in ("pix2pix_maps", "worldmaps_pix2pix", "worldmaps_cyclegan"):
        load_config(CONFIGS / f"{name}.yaml")


def test_unknown_key_names_it_and_the_closest(data: Path) -> None:
    with pytest.raises(ValueError, match=r"'optim.lr_gg'.*'lr_g'"):
        from_dict(tiny("pix2pix", data, optim={"lr_gg": 1e-3}))
    with pytest.raises(ValueError, match=r"'generator.options.ngff'.*'ngf'"):
        from_dict(tiny("pix2pix", data), ["generator.options.ngff=8"])
    with pytest.raises(ValueError, match=r"'train.batch_size': expected int"):
        from_dict(tiny("pix2pix", data), ["train.batch_size=big"])


def test_overrides_parse_yaml_values(data: Path) -> None:
    config = from_dict(tiny("pix2pix", data), ["optim.grad_clip=1e1", "data.serial=true"])
    assert config.optim.grad_clip == 10.0 and config.data.serial is True


def test_bad_setups_are_refused_before_the_first_step(data: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        make_engine(tiny("pix2pix", tmp_path / "missing"), tmp_path)
    with pytest.raises(ValueError, match=r"crop_size.*multiple of 32"):
        make_engine(
            tiny("pix2pix", data, generator={"options": {"ngf": 4, "num_downs": 5}}), tmp_path
        )
    with pytest.raises(ValueError, match="identity loss"):
        from_dict(tiny("cyclegan", data, data={"output_channels": 1}))
    config = tiny("cyclegan", data)
    config["data"] = {**config["data"], "root": str(data / "train")}
    with pytest.raises(ValueError, match="trainA"):
        make_engine(config, tmp_path)


def test_unpaired_data_is_refused_for_pix2pix(tmp_path: Path, data: Path) -> None:
    root = tmp_path / "unpaired"
    for d in ("trainA", "trainB"):
        (root / d).mkdir(parents=True)
        for f in (data / d).iterdir():
            (root / d / f.name).write_bytes(f.read_bytes())
    with pytest.raises(ValueError, match="unpaired"):
        make_engine(tiny("pix2pix", root), tmp_path / "run")


def test_config_copy_is_independent(data: Path) -> None:
    base = tiny("pix2pix", data)
    snapshot = copy.deepcopy(base)
    from_dict(base, ["optim.lr_g=0.1"])
    assert base == snapshot


@pytest.mark.slow
@pytest.mark.parametrize("model", ["pix2pix", "cyclegan"])
def test_resume_is_exact(data: Path, tmp_path: Path, model: str) -> None:
    """2N steps in one go == N steps, stop, resume for N more: identical weights.

    N = 5 with 4 batches per epoch stops mid-epoch, so the data order, the schedulers, the
    image pool, dropout and augmentation randomness must all be restored.
    """
    sections = {
        "data": {"max_dataset_size": 8},
        "optim": {"d_steps": 2},
        "schedule": {"epochs": 1, "decay_epochs": 3, "policy": "plateau", "patience": 0},
        "discriminator": {"options": {"ndf": 4, "n_layers": 2}, "pool_size": 3},
        "train": {"batch_size": 2, "max_steps": 10, "ema": 0.9},
        "log": {"eval_every": 3},  # evaluations swap the averaged weights in and out
    }
    full, resumed = resumed_run(tiny(model, data, **sections), tmp_path, half=5)
    average_a, average_b = full.ema.state_dict(), resumed.ema.state_dict()
    assert average_a["updates"] == average_b["updates"] == 10
    for name, tensors in average_a["average"].items():
        for key, value in tensors.items():
            assert torch.equal(value, average_b["average"][name][key]), (name, key)
    if model == "pix2pix":  # its generator loss stalls within these steps
        assert full.stepper.optimizers["G"].param_groups[0]["lr"] < 2e-4
    opt_a = full.stepper.optimizers["G"].state_dict()["state"]
    opt_b = resumed.stepper.optimizers["G"].state_dict()["state"]
    assert all(torch.equal(opt_a[i]["exp_avg"], opt_b[i]["exp_avg"]) for i in opt_a)


def test_ema_must_be_a_decay(data: Path) -> None:
    with pytest.raises(ValueError, match=r"'train.ema': must be in \[0, 1\), got 1"):
        from_dict(tiny("pix2pix", data, train={"ema": 1.0}))


def test_weight_average_follows_the_decay_ramp() -> None:
    net = torch.nn.Linear(2, 1)
    start = net.weight.detach().clone()
    average = WeightAverage({"AtoB": net}, decay=0.5)
    with torch.no_grad():
        net.weight.fill_(1.0)
    average.update()  # decay min(0.5, 2 / 11)
    expected = start + (1 - 2 / 11) * (1 - start)
    assert torch.allclose(average.average["AtoB"]["weight"], expected)
    average.update()  # decay min(0.5, 3 / 12)
    expected = expected + 0.75 * (1 - expected)
    assert torch.allclose(average.average["AtoB"]["weight"], expected)
    for _ in range(20):
        average.update()
    assert torch.allclose(average.average["AtoB"]["weight"], torch.ones(1, 2), atol=1e-5)
    with torch.no_grad():
        net.weight.fill_(3.0)
    average.update()  # the ramp is over: decay 0.5
    assert torch.allclose(average.average["AtoB"]["weight"], torch.full((1, 2), 2.0), atol=1e-4)


def test_ema_weights_are_validated_and_written(data: Path, tmp_path: Path) -> None:
    t = make_engine(tiny("pix2pix", data, train={"ema": 0.5, "max_steps": 4}), tmp_path)
    t.fit()
    live = {k: v.clone() for k, v in t.model.G.state_dict().items()}
    average = t.ema.average["AtoB"]
    assert any(not torch.equal(live[k], average[k]) for k in live if k.endswith("weight"))
    written = load_generators(tmp_path / "generator_latest.safetensors").generators["AtoB"]
    for key, value in written.state_dict().items():
        assert torch.equal(value, average[key]), key
    t.model.G.eval()
    x = torch.rand(1, 3, SIZE, SIZE)
    assert not torch.allclose(written(x), t.model.G(x))

    # Validation scores the averaged weights, not the live ones, which come back afterwards.
    t.report = RunReport(tmp_path, enabled=True, tensorboard=False)  # fit closed it

    def val_l1() -> float:
        t.evaluate()
        lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
        return json.loads(lines[-1])["val_L1"]

    with_ema = val_l1()
    assert all(torch.equal(v, t.model.G.state_dict()[k]) for k, v in live.items())
    ema, t.ema = t.ema, None
    assert val_l1() != with_ema
    with ema.applied():
        assert val_l1() == with_ema


def test_bf16_autocast_step_on_the_cpu(data: Path, tmp_path: Path) -> None:
    t = make_engine(tiny("pix2pix", data, train={"precision": "bf16", "device": "cpu"}), tmp_path)
    batch = _to_device(next(iter(t.loader)), t.device, False)
    with t.stepper.autocast():
        assert t.model.G(batch["input"]).dtype == torch.bfloat16
    before = weights(t)
    losses = t.model.train_step(batch, t.stepper)
    assert all(torch.isfinite(v) for v in losses.values())
    after = t.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("G."))
    assert all(p.dtype == torch.float32 for p in t.model.parameters())  # fp32 master weights


def test_fp16_on_the_cpu_is_refused(data: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        make_engine(tiny("pix2pix", data, train={"precision": "fp16", "device": "cpu"}), tmp_path)


@pytest.mark.slow
def test_a_run_with_loader_workers_exits_when_done(data: Path, tmp_path: Path) -> None:
    """Loader workers ignore SIGTERM, so any still alive at exit made multiprocessing's exit
    handler wait for them forever: `translate train` printed done and never returned."""
    config = tiny("pix2pix", data)
    config["data"]["num_workers"] = 1
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "translate.cli", "train", str(config_path), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [*cmd, "--run-dir", str(tmp_path / "run")], env=env, capture_output=True, timeout=120
    )
    assert run.returncode == 0 and b"done: 3 steps" in run.stdout, run.stderr


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_signal_saves_at_once_and_exits_with_its_code(
    data: Path, tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    """SIGTERM (schedulers) or Ctrl-C, sent to the whole process group as a terminal or
    Slurm does, loader worker included: the checkpoint is written, the final evaluation is
    skipped, the exit code is 128 + the signal and the run is not reported as done."""
    config = tiny("pix2pix", data, schedule={"epochs": 1000, "decay_epochs": 0})
    config["train"]["max_steps"] = None
    config["data"]["num_workers"] = 1
    config_path = tmp_path / "long.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "translate.cli", "train", str(config_path), "--run-dir"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            [*cmd, str(run_dir), "--no-progress"], env=env, stdout=stdout, stderr=stderr,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        metrics = run_dir / "metrics.jsonl"
        while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
            assert proc.poll() is None, f"training exited early: {err.read_text()}"
            assert time.monotonic() < deadline, "no training steps within 120 s"
            time.sleep(0.2)
        os.killpg(proc.pid, sig)
        assert proc.wait(timeout=60) == code, err.read_text()
    finally:
        proc.kill()
    state = load_state(latest_state(run_dir))
    assert state["step"] >= 2
    # log.eval_every is 1000: a final evaluation would have written the generator file
    assert not (run_dir / "generator_latest.safetensors").exists()
    assert "done" not in out.read_text()
    assert f"stopped by {sig.name} at step {state['step']}" in err.read_text()
    assert f"translate train --resume {run_dir}" in err.read_text()
    resumed = make_engine(config, run_dir, resume=True)
    assert resumed.step == state["step"]


def _ddp_worker(rank: int, config: dict[str, Any], run_dir: Path, port: int) -> None:
    join_as(rank, port)
    t = Engine(from_dict(config), run_dir, progress=False)
    t.fit()
    params = {k: v.detach() for k, v in t.model.named_parameters()}
    torch.save(params, run_dir / f"params_rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_ddp_on_gloo_keeps_ranks_identical(data: Path, tmp_path: Path) -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tiny("pix2pix", data, train={"batch_size": 2, "max_steps": 3, "device": "cpu"})
    mp.spawn(_ddp_worker, args=(config, tmp_path, port), nprocs=2, join=True)
    p0 = torch.load(tmp_path / "params_rank0.pt")
    p1 = torch.load(tmp_path / "params_rank1.pt")
    single = make_engine(tiny("pix2pix", data), tmp_path / "single")
    initial = dict(single.model.named_parameters())
    for key in p0:
        assert torch.equal(p0[key], p1[key]), key
    assert any(not torch.equal(p0[k], initial[k]) for k in p0)
    assert (tmp_path / "generator_latest.safetensors").is_file()  # rank 0 wrote the files


@pytest.mark.parametrize(
    ("model", "sections"),
    [
        (
            "pix2pix",
            {
                "discriminator": {
                    "name": "multiscale",
                    "options": {"ndf": 4, "n_layers": 1, "num_scales": 2},
                    "diff_augment": "translation,cutout,color",
                },
                "loss": {"gan_mode": "hinge", "feature_matching": 10.0},
                "optim": {"grad_clip": 1.0, "lr_d": 1e-4},
            },
        ),
        ("cyclegan", {"loss": {"gan_mode": "wgangp"}, "schedule": {"policy": "cosine"}}),
        ("pix2pix", {"loss": {"gan_mode": "lsgan"}, "schedule": {"policy": "plateau"}}),
    ],
)
def test_options_train(data: Path, tmp_path: Path, model: str, sections: dict) -> None:
    """Feature matching, DiffAugment, clipping, WGAN-GP and the other lr policies run."""
    t = make_engine(tiny(model, data, **sections), tmp_path)
    t.config.train.max_steps = 5  # crosses an epoch end, so the scheduler steps
    t.fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [v for r in records for k, v in r.items() if k.startswith(("G", "D"))]
    assert losses and all(np.isfinite(losses))
    assert t.epoch == 1
    if t.config.schedule.policy == "plateau":  # it saw the epoch's generator loss
        assert 0 < t.schedulers["G"].best < float("inf")
    saved = load_generators(tmp_path / "generator_latest.safetensors")
    assert set(saved.generators) == ({"AtoB", "BtoA"} if model == "cyclegan" else {"AtoB"})


def test_step_schedule_and_separate_lrs(data: Path, tmp_path: Path) -> None:
    config = tiny(
        "pix2pix",
        data,
        optim={"lr_g": 1e-3, "lr_d": 1e-4},
        schedule={"policy": "step", "step_size": 1, "gamma": 0.5},
        train={"batch_size": 4, "max_steps": 5},
    )
    t = make_engine(config, tmp_path)
    t.fit()  # 2 batches per epoch: two epoch ends before step 5
    assert t.stepper.optimizers["G"].param_groups[0]["lr"] == pytest.approx(1e-3 / 4)
    assert t.stepper.optimizers["D"].param_groups[0]["lr"] == pytest.approx(1e-4 / 4)


def test_data_order_does_not_depend_on_workers_or_resume(data: Path, tmp_path: Path) -> None:
    """Each item's crop and flip are seeded by (seed, epoch, index): two loader workers and
    a mid-epoch restart give the same batches as one process reading the whole epoch."""

    def epoch_batches(workers: int, skip: int = 0, epoch: int = 1) -> list[torch.Tensor]:
        t = make_engine(tiny("cyclegan", data, data={"num_workers": workers}), tmp_path)
        t.sampler.set_epoch(epoch, skip)
        return [torch.cat([b["A"], b["B"]]) for b in t.loader]

    serial = epoch_batches(0)
    assert len(serial) == 4
    assert all(torch.equal(a, b) for a, b in zip(serial, epoch_batches(2), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(serial[1:], epoch_batches(0, 1), strict=True))
    next_epoch = epoch_batches(0, epoch=2)
    assert not all(torch.equal(a, b) for a, b in zip(serial, next_epoch, strict=True))


def _copy_split(data: Path, root: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        (root / name).mkdir(parents=True)
        for f in (data / name).iterdir():
            (root / name / f.name).write_bytes(f.read_bytes())
    return root


@pytest.mark.parametrize("model", ["pix2pix", "cyclegan"])
def test_dataset_without_val_holds_out_training_files(
    data: Path, tmp_path: Path, model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy_split(data, tmp_path / "d", ("train", "trainA", "trainB"))
    t = make_engine(tiny(model, root), tmp_path / "run")
    assert t.config.data.val_split == "holdout" and t.evaluator.val_images == 1
    if model == "pix2pix":
        trained = {Path(a).name for a, _ in t.train_set.pairs}
        held = [Path(a).name for a, _ in t.evaluator.val_set.pairs]
    else:
        trained = {p.name for p in t.train_set.paths_a}
        held = [p.name for p in t.evaluator.val_set.paths_a]
    assert held == ["7.png"] and len(trained) == 7 and "7.png" not in trained
    err = capsys.readouterr().err
    assert "validation: 1 images" in err and "(held out of the training files)" in err
    # one image's score swings with it: the warning names the split and the way to more
    assert "warning: validation scores only 1 image, one centre crop of 16 px each " in err
    assert (
        "(data.val_split 'holdout')" in err and f"add a val/ folder of images under {root}" in err
    )
    summary = t.fit()
    assert summary["val_split"] == "holdout" and summary["val_images"] == 1
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["data"]["val_split"] == "holdout"


def test_training_images_validate_only_when_asked(data: Path, tmp_path: Path) -> None:
    root = _copy_split(data, tmp_path / "d", ("train",))
    t = make_engine(tiny("pix2pix", root, data={"val_split": "train"}), tmp_path / "a")
    assert len(t.train_set) == 8 and t.config.data.val_split == "train"
    assert t.evaluator.val_images == 4
    with pytest.raises(ValueError, match=r"no split 'vall'.*splits present: 'train', 'val'"):
        make_engine(tiny("pix2pix", data, data={"val_split": "vall"}), tmp_path / "b")


def test_validation_scores_the_whole_split_up_to_val_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from translate.core import metrics

    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("val", 11)):
        for i in range(count):
            a = smooth_image(rng)
            write_image(tmp_path / "d" / split / f"{i}.png", np.concatenate([a, a], axis=1))
    scored: list[int] = []
    add = metrics.PairedScores.add
    monkeypatch.setattr(
        metrics.PairedScores,
        "add",
        lambda self, o, t, *rest: (scored.append(len(o)), add(self, o, t, *rest)),
    )
    config = tiny("pix2pix", tmp_path / "d")
    del config["data"]["val_size"]
    t = make_engine(config, tmp_path / "run")
    t.evaluate()
    # Twice: this batch norm generator is scored in both eval modes (running, per image).
    assert sum(scored) == 2 * 11 and t.summary()["val_images"] == 11
    scored.clear()
    t = make_engine(tiny("pix2pix", tmp_path / "d", data={"val_size": 9}), tmp_path / "run9")
    t.evaluate()
    assert scored == [8, 1, 8, 1] and t.summary()["val_images"] == 9


def test_missing_reference_data_says_how_to_get_it(tmp_path: Path) -> None:
    for name, command in (
        ("pix2pix_facades", "translate prepare download facades"),
        ("pix2pix_maps", "translate prepare download maps"),
        ("cyclegan_horse2zebra", "translate prepare download horse2zebra"),
    ):
        config = load_config(CONFIGS / f"{name}.yaml")
        config.data.root = str(tmp_path / "datasets" / Path(config.data.root).name)
        with pytest.raises(ValueError, match=f"get it with: {command} --root {tmp_path}"):
            Engine(config, tmp_path / name, progress=False)
    config = from_dict(tiny("cyclegan", tmp_path / "datasets" / "maps"))
    with pytest.raises(ValueError, match="download maps --unpaired"):
        Engine(config, tmp_path / "run", progress=False)


def test_missing_data_under_torchrun_is_reported_once(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", "-m", "translate.cli", "train"]
    command += [str(CONFIGS / "pix2pix_facades.yaml"), "--set", "train.device=cpu"]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    output = done.stdout + done.stderr
    message = "dataset folder datasets/facades does not exist; get it with: "
    message += "translate prepare download facades"
    assert done.returncode != 0
    assert output.count(f"Error: config key 'data.root': {message}") == 1
    assert f"traceback : config key 'data.root': {message}" in output  # torchrun's root cause
    assert "translate/training" not in output  # no traceback of ours


def test_unpaired_validation_counts_only_the_images_it_uses(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("test", 11)):
        for d in "AB":
            for i in range(count):
                write_image(tmp_path / "d" / f"{split}{d}" / f"{i}.png", smooth_image(rng))
    config = tiny("cyclegan", tmp_path / "d")
    del config["data"]["val_size"]
    t = make_engine(config, tmp_path / "run")
    assert t.evaluator.val_images == 8
    assert sum(len(b["A"]) for b in t.evaluator.batches()) == 8


def test_a_training_checkpoint_is_a_model_and_snapshots_outlive_keep(
    data: Path, tmp_path: Path
) -> None:
    """``checkpoints/state_<step>.pt`` works wherever MODEL is taken; generator snapshots
    every ``snapshot_every`` steps are never deleted by ``keep``."""
    from translate import Translator
    from translate.models.loading import load_model

    log = {"eval_every": 1000, "checkpoint_every": 2, "keep": 1, "snapshot_every": 2}
    config = tiny("cyclegan", data, train={"batch_size": 2, "max_steps": 4}, log=log)
    t = make_engine(config, tmp_path)
    t.fit()
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["state_4.pt"]
    snapshots = sorted(p.name for p in (tmp_path / "generators").iterdir())
    assert snapshots == ["generator_2.safetensors", "generator_4.safetensors"]
    state = tmp_path / "checkpoints" / "state_4.pt"
    model = load_model(state)
    assert model.training["steps"] == 4 and model.training["checkpoint"] == str(state)
    x = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    t.model.eval()
    for direction, net in (("AtoB", t.model.G_AB), ("BtoA", t.model.G_BA)):
        assert torch.equal(model.generators[direction](x), net(x)), direction
        snapshot = load_generators(tmp_path / "generators" / "generator_4.safetensors")
        assert torch.equal(snapshot.generators[direction](x), net(x)), direction
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    translated = Translator.load(state, device="cpu", precision="fp32", direction="BtoA")(image)
    assert translated.shape == image.shape
    runner = CliRunner()
    result = runner.invoke(main, ["info", str(state)])
    assert result.exit_code == 0 and "architecture: resnet" in result.output, result.output
    exported = tmp_path / "g.pt"
    result = runner.invoke(main, ["export", str(state), "--format", "torchscript", str(exported)])
    assert result.exit_code == 0 and exported.is_file(), result.output
    out = tmp_path / "out"
    write_image(tmp_path / "in" / "x.png", image)
    result = runner.invoke(main, ["convert", str(state), str(tmp_path / "in"), str(out)])
    assert result.exit_code == 0 and (out / "x.png").is_file(), result.output


def test_validation_scores_both_eval_modes_and_records_the_better(
    data: Path, tmp_path: Path
) -> None:
    """Running statistics against each image's own with dropout (the reference's test);
    the generator file records the better, and `translate info` shows it."""
    config = tiny("pix2pix", data, log={"every": 1, "eval_every": 2, "checkpoint_every": 2})
    make_engine(config, tmp_path).fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    scored = [r for r in records if "val_L1" in r]
    assert scored and all("val_L1_batch_stats" in r for r in scored)
    last = scored[-1]
    better = "batch" if last["val_L1_batch_stats"] < last["val_L1"] else "running"
    gen = load_generators(tmp_path / "generator_latest.safetensors")
    assert gen.eval_mode.norm_stats == better and gen.eval_mode.dropout == (better == "batch")
    result = CliRunner().invoke(main, ["info", str(tmp_path / "generator_latest.safetensors")])
    assert f"norm_stats: {better}" in result.output


def test_a_stop_signal_during_validation_cuts_it_short(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 validation images can take minutes: a SIGTERM arriving during validation stops
    it before the next chunk, logs and saves nothing from the part scored, and the run
    writes its checkpoint at once, in training mode as before."""
    monkeypatch.setattr(engine, "VAL_CHUNK", 1)  # the 4 val images in 4 chunks
    config = tiny("pix2pix", data, log={"eval_every": 1})
    t = make_engine(config, tmp_path)
    calls = []
    validate = t.model.validate

    def validate_then_signal(batch: dict[str, Any]) -> Any:
        calls.append(t.model.training)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return validate(batch)

    monkeypatch.setattr(t.model, "validate", validate_then_signal)
    t.fit()
    assert t.stopped_by == signal.SIGTERM
    assert calls == [False]  # one chunk, in eval mode; no eval-mode pass either
    assert t.model.training and all(m.training for m in t.model.modules())
    assert load_state(latest_state(tmp_path))["step"] == 1
    records = [
        json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().split("\n") if line
    ]
    assert not any("val_L1" in r for r in records)
    assert not (tmp_path / "generator_latest.safetensors").exists()


def test_with_ema_a_checkpoint_as_model_and_snapshots_hold_the_averages(
    data: Path, tmp_path: Path
) -> None:
    """train.ema: the generator files hold the averaged weights, so a checkpoint given as
    MODEL and the step's snapshot must give the same generator, not the live weights."""
    from translate.models.loading import load_model

    log = {"eval_every": 3, "checkpoint_every": 3, "snapshot_every": 3}
    config = tiny("pix2pix", data, train={"max_steps": 3, "ema": 0.9}, log=log)
    t = make_engine(config, tmp_path)
    t.fit()
    x = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    latest = load_generators(tmp_path / "generator_latest.safetensors").generators["AtoB"](x)
    live = t.model.G.eval()(x)
    assert not torch.allclose(latest, live)  # the averages differ from the live weights
    for path in (tmp_path / "checkpoints" / "state_3.pt", tmp_path / "generators"):
        path = path if path.suffix else path / "generator_3.safetensors"
        assert torch.equal(load_model(path).generators["AtoB"](x), latest), path
    # The generator entry is self-contained (no other entry of the checkpoint is read), and
    # its tensors are the averages themselves, so the file holds them once.
    state_path = tmp_path / "checkpoints" / "state_3.pt"
    state = load_state(state_path)
    alone = {CHECKPOINT_KEY: state.pop(CHECKPOINT_KEY)}
    assert torch.equal(generators_from_checkpoint(state_path, alone).generators["AtoB"](x), latest)
    without = io.BytesIO()
    torch.save(state, without)
    generator_bytes = (tmp_path / "generator_latest.safetensors").stat().st_size
    assert state_path.stat().st_size - len(without.getvalue()) < generator_bytes / 2


def test_a_run_with_only_a_checkpoint_converts(data: Path, tmp_path: Path) -> None:
    """A run stopped before its first evaluation wrote a generator file: RUN as MODEL is its
    newest checkpoint's generator, the weight average with train.ema, as the files hold."""
    log = {"eval_every": 1000, "checkpoint_every": 2, "keep": 2}
    t = make_engine(
        tiny("pix2pix", data, train={"max_steps": 4, "ema": 0.9}, log=log), tmp_path / "run"
    )
    t.fit()
    run = tmp_path / "run"
    image = (np.random.default_rng(0).random((SIZE, SIZE, 3)) * 255).astype(np.uint8)
    write_image(tmp_path / "in" / "x.png", image)
    runner, args = CliRunner(), [str(tmp_path / "in"), "--precision", "fp32"]
    result = runner.invoke(
        main,
        [
            "convert",
            str(run / "generator_latest.safetensors"),
            args[0],
            str(tmp_path / "want"),
            *args[1:],
        ],
    )
    assert result.exit_code == 0, result.output
    for name in ("generator_latest.safetensors", "generator_best.safetensors"):
        (run / name).unlink()
    result = runner.invoke(main, ["convert", str(run), args[0], str(tmp_path / "out"), *args[1:]])
    assert result.exit_code == 0, result.output
    assert np.array_equal(
        read_image(tmp_path / "out" / "x.png"), read_image(tmp_path / "want" / "x.png")
    )
    assert resolve_model_path(str(run)) == run / "checkpoints" / "state_4.pt"  # the newest
    for state in (run / "checkpoints").iterdir():
        state.unlink()
    result = runner.invoke(main, ["convert", str(run), args[0], str(tmp_path / "none")])
    assert result.exit_code == 1
    assert (
        "a directory without a generator" in result.output
        and "checkpoints/state_<step>.pt" in result.output
    )


# --- what a run records and shows while it goes -------------------------------------------


@pytest.mark.parametrize(("cpu_kind", "picked"), [("avx2", "fp32"), ("native-bf16", "bf16")])
def test_auto_precision_trains_as_the_cpu_allows_and_the_run_records_it(
    data: Path, tmp_path: Path, cpu, cpu_kind: str, picked: str
) -> None:
    """train.precision auto: bf16 on a CPU with native bf16, fp32 on one without (the
    detection convert's auto uses, forced both ways); config.yaml and the generator files
    record the precision, device and threads the run ran with."""
    cpu({"avx2": AVX2, "native-bf16": NATIVE_BF16}[cpu_kind])
    config = tiny("pix2pix", data, train={"max_steps": 1})
    assert config["train"].get("precision", "auto") == "auto"
    t = make_engine(config, tmp_path)
    assert t.runtime.precision.name == picked and t.runtime.threads == torch.get_num_threads()
    t.fit()
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())["train"]
    ran = {"device": "cpu", "precision": picked, "threads": torch.get_num_threads()}
    assert {k: saved[k] for k in ran} == ran
    assert {
        k: load_generators(tmp_path / "generator_latest.safetensors").training[k] for k in ran
    } == ran
    # a resumed run reads config.yaml back: it continues with what the run ran with
    assert load_config(tmp_path / "config.yaml").train.precision == picked


def test_train_threads_sets_torchs_threads(data: Path, tmp_path: Path) -> None:
    t = make_engine(tiny("pix2pix", data, train={"threads": 2, "max_steps": 1}), tmp_path)
    assert torch.get_num_threads() == 2 and t.config.train.threads == 2
    with pytest.raises(ValueError, match="'train.threads': must be at least 1, got 0"):
        from_dict(tiny("pix2pix", data, train={"threads": 0}))


def test_every_metrics_row_has_the_time_and_the_seconds_per_step(
    data: Path, tmp_path: Path
) -> None:
    config = tiny("pix2pix", data, train={"max_steps": 4}, log={"every": 1, "eval_every": 2})
    started = time.time()
    make_engine(config, tmp_path).fit()
    ended = time.time()
    rows = _records(tmp_path)
    assert len(rows) == 4 + 2  # a loss row a step, an evaluation row every 2 steps
    times = [r["time"] for r in rows]
    assert started < times[0] and times == sorted(times) and times[-1] < ended
    for row in rows:  # seconds per step: more than nothing, less than the whole run
        assert 0 < row["step_seconds"] < ended - started, row
    # the clock is not plotted with the losses
    assert metric_panel("time") is None and metric_panel("step_seconds") is None


@pytest.mark.parametrize(("max_steps", "steps"), [(None, 16), (6, 6)])
def test_one_bar_counts_the_whole_runs_steps(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_steps: int | None, steps: int
) -> None:
    """One bar over the run in steps (4 epochs of 4 batches, or train.max_steps), with tqdm's
    estimate of the time left, not one bar per epoch."""
    from tqdm import tqdm

    bars: list[tqdm] = []

    class Recorded(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(engine, "tqdm", Recorded)
    config = tiny("pix2pix", data, train={"max_steps": max_steps}, log={"eval_every": 1000})
    Engine(from_dict(config), tmp_path, progress=True).fit()
    assert len(bars) == 1 and bars[0].total == steps and bars[0].n == steps
    assert bars[0].unit == "step" and bars[0].desc.startswith(f"epoch {min(4, (steps + 3) // 4)}/4")


def test_max_minutes_stops_after_the_step_that_passed_it(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a clock where each step takes a minute, a limit of 2.5 minutes ends the run after
    step 3, which ends as at max_steps (checkpoint, final evaluation, generator file); the
    checkpoint keeps the time, so a resume counts it."""
    t = make_engine(tiny("pix2pix", data, train={"max_steps": 10, "max_minutes": 2.5}), tmp_path)
    monkeypatch.setattr(engine.RunTime, "seconds", lambda self: self.before + 60.0 * t.step)
    summary = t.fit()
    assert t.timed_out and summary["steps"] == 3
    assert load_state(latest_state(tmp_path))["run_seconds"] == 180.0
    assert (tmp_path / "generator_latest.safetensors").is_file()
    resumed = make_engine(
        tiny("pix2pix", data, train={"max_steps": 10, "max_minutes": 4}), tmp_path, resume=True
    )
    assert resumed.time.before == 180.0  # the earlier attempt's minutes count: 1 more step
    monkeypatch.setattr(engine.RunTime, "seconds", lambda self: 60.0 * resumed.step)
    assert resumed.fit()["steps"] == 4 and resumed.timed_out


def test_run_time_counts_the_earlier_attempts() -> None:
    clock = engine.RunTime(max_minutes=1.0, before=59.9)
    assert clock.seconds() == 59.9 and not clock.passed()  # not started: no time of its own
    clock.start()
    time.sleep(0.15)
    assert clock.passed() and 60.0 < clock.seconds() < 120
    assert not engine.RunTime(None, before=1e9).passed()


def test_a_run_stopped_at_its_time_limit_says_so_and_resumes_exactly(
    data: Path, tmp_path: Path
) -> None:
    """A limit no step can meet ends the run after step 1 with the `done` line saying why; a
    resume with the same limit takes no step, one with a higher limit continues to
    max_steps, with the weights of a run that was never stopped."""
    config = tiny("pix2pix", data, train={"max_steps": 3, "max_minutes": 1e-6})
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(
        main, ["train", str(config_path), "--run-dir", str(run_dir), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    limit = "(stopped at the time limit, train.max_minutes 1e-06)"
    assert f"done: 1 step, 1 epoch {limit}; generator:" in result.output
    assert "note: the time limit stopped the run at 100% of its starting learning rate" in (
        result.output
    )
    assert (run_dir / "generator_latest.safetensors").is_file()
    resume = ["train", "--resume", str(run_dir), "--no-progress"]
    result = runner.invoke(main, resume)
    assert result.exit_code == 0 and f"done: 1 step, 1 epoch {limit}" in result.output
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["state_1.pt"]
    result = runner.invoke(main, [*resume, "--set", "train.max_minutes=10"])
    assert result.exit_code == 0 and "done: 3 steps, 1 epoch; generator:" in result.output
    assert "note: the time limit" not in result.output  # it finished: no limit stopped it
    config["train"]["max_minutes"] = None
    full = make_engine(config, tmp_path / "full")
    full.fit()
    a, b = full.model.state_dict(), load_state(latest_state(run_dir))["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
