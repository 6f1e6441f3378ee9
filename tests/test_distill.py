"""Distillation: the feature loss by hand, a short `translate distill` run that writes a small
student, exact resume, and every kind of TEACHER (file, run directory, checkpoint, bad path)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from torch import nn
from training_helpers import SIZE, make_engine, resumed_run, tiny

from translate import Translator, build_generator
from translate.cli import main
from translate.data.transforms import Preprocess
from translate.models.model_file import GeneratorSpec, InputSpec, load_generators, save_generators
from translate.networks import count_macs
from translate.training.base import Prepared
from translate.training.configure import from_dict
from translate.training.engine import Engine, Runtime
from translate.training.models.distill import NARROWEST, Distill, feature_distillation_loss

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TEACHER = GeneratorSpec("resnet_9blocks", 3, 3, {"ngf": 8})

pytestmark = pytest.mark.usefixtures("one_thread")


def teacher_file(folder: Path, spec: GeneratorSpec) -> Path:
    """A generator file of ``spec`` for the 16 px test images."""
    torch.manual_seed(1)
    path = folder / "teacher.safetensors"
    pre = InputSpec(Preprocess(load_size=18, crop_size=SIZE, flip=False), 3, 3)
    save_generators(path, {"AtoB": (spec, spec.build())}, pre)
    return path


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return teacher_file(tmp_path_factory.mktemp("teacher"), TEACHER)


def distill(teacher: str | Path, root: Path, model: str = "distill", **sections: dict) -> dict:
    config = tiny(model, root, **sections)
    config["generator"] = {"name": "mobile_resnet_9blocks", "options": {"ngf": 2}}
    config["loss"] = {"teacher": str(teacher), **sections.get("loss", {})}
    return config


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_feature_distillation_loss_matches_a_hand_computed_case() -> None:
    """Tap 1: one student channel mapped to two by weights (2, -1), bias (0, 1); tap 2: the
    identity. The loss is the sum over taps of each tap's mean squared error."""
    first, second = nn.Conv2d(1, 2, 1), nn.Conv2d(1, 1, 1, bias=False)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([2.0, -1.0]).view(2, 1, 1, 1))
        first.bias.copy_(torch.tensor([0.0, 1.0]))
        second.weight.fill_(1.0)
    student = [torch.tensor([[[[1.0, 3.0]]]]), torch.tensor([[[[0.5]]]])]
    teacher = [torch.tensor([[[[1.0, 6.0]], [[0.0, -2.0]]]]), torch.tensor([[[[2.5]]]])]
    # Mapped: [[2, 6], [0, -2]]; errors 1, 0, 0, 0 over 4 values, then (0.5 - 2.5)^2 = 4.
    loss = feature_distillation_loss(student, teacher, nn.ModuleList([first, second]))
    assert loss.item() == pytest.approx(1 / 4 + 4.0)
    loss.backward()
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0


def test_taps_with_the_output_come_from_one_pass() -> None:
    net = build_generator("mobile_resnet_9blocks", ngf=4).eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    out, features = net(x, layers=[12, 9], with_output=True)
    assert torch.equal(out, net(x))
    assert all(torch.equal(a, b) for a, b in zip(features, net(x, layers=[12, 9]), strict=True))
    assert net(x, layers=[], with_output=True)[1] == []


def test_cli_distills_a_student_with_20x_fewer_macs(
    data: Path,
    tmp_path: Path,
) -> None:
    wide = GeneratorSpec("resnet_9blocks", 3, 3, {"ngf": 16})  # 20x fewer MACs: ngf 4 or more
    teacher = teacher_file(tmp_path, wide)
    run_dir = tmp_path / "run"
    args = ["distill", str(teacher), "--data", str(data), "--run-dir", str(run_dir)]
    options = ["train.max_steps=3", "data.num_workers=0", "log.tensorboard=false"]
    options += ["discriminator.options={ndf: 4, n_layers: 2}"]
    sets = [arg for option in options for arg in ("--set", option)]
    result = CliRunner().invoke(main, [*args, *sets, "--no-progress"])
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"] == "distill"  # the folder holds pairs
    assert config["loss"]["teacher"] == str(teacher)
    assert config["loss"]["teacher_sha256"] == sha256(teacher)
    # The teacher's preprocessing became the data's.
    assert config["data"]["preprocess"]["load_size"] == 18
    assert config["data"]["preprocess"]["flip"] is False

    student = load_generators(run_dir / "generator_latest.safetensors")
    assert student.specs["AtoB"].name == "mobile_resnet_9blocks"
    shape = (3, 256, 256)
    teacher_macs = count_macs(wide.build(), shape)
    assert count_macs(student.generators["AtoB"], shape) * 20 <= teacher_macs
    assert "too narrow" not in result.stderr
    assert student.training["model"] == "distill"
    # Checkpoints hold the student, its adapters and D, never the teacher.
    state = torch.load(run_dir / "checkpoints" / "state_3.pt", weights_only=False)
    prefixes = {key.split(".")[0] for key in state["model"]}
    assert prefixes == {"G", "D", "adapters"}
    out = Translator.load(run_dir / "generator_latest.safetensors", device="cpu").translate_batch(
        [np.full((SIZE, SIZE, 3), 128, np.uint8)]
    )[0]
    assert out.shape == (SIZE, SIZE, 3)


def test_resume_is_exact_and_refuses_a_changed_teacher(
    data: Path,
    teacher: Path,
    tmp_path: Path,
) -> None:
    """d_steps 2 runs steps without a generator update; 6 steps of 4 per epoch stop
    mid-epoch; the adapters are built lazily and must come back too."""
    copy = tmp_path / "teacher.safetensors"
    copy.write_bytes(teacher.read_bytes())
    sections = {"optim": {"d_steps": 2}, "train": {"batch_size": 2, "max_steps": 6}}
    config = distill(copy, data, **sections)
    full, _ = resumed_run(config, tmp_path, half=3)
    assert full.model.adapters is not None
    assert [a.in_channels for a in full.model.adapters] == [8, 8, 8, 8]  # ngf 2 * 4
    assert [a.out_channels for a in full.model.adapters] == [32, 32, 32, 32]

    save_generators(copy, {"AtoB": (TEACHER, TEACHER.build())})  # other weights
    result = CliRunner().invoke(main, ["distill", "--resume", str(tmp_path / "half")])
    assert result.exit_code == 1
    assert f"'loss.teacher': {copy} changed since this run started" in result.output


def test_teacher_from_a_run_directory_and_a_checkpoint(
    data: Path,
    tmp_path: Path,
) -> None:
    """A pix2pix run is the teacher, as its folder and as its training checkpoint; the
    unpaired trainer distills it on the domains, without ground truth."""
    teacher_run = tmp_path / "teacher"
    pix2pix = tiny(
        "pix2pix",
        data,
        generator={"name": "resnet_9blocks", "options": {"ngf": 4, "norm": "instance"}},
        train={"batch_size": 2, "max_steps": 2},
        log={"checkpoint_every": 2},
    )
    make_engine(pix2pix, teacher_run).fit()
    checkpoint = teacher_run / "checkpoints" / "state_2.pt"
    x = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    expected = load_generators(teacher_run / "generator_best.safetensors").generators["AtoB"](x)

    for source, model in ((teacher_run, "distill"), (checkpoint, "distill_unpaired")):
        t = make_engine(distill(source, data, model), tmp_path / model)
        with torch.no_grad():
            assert torch.allclose(t.model.teacher(x), expected, atol=1e-6), source
        t.fit()
        assert not any(p.requires_grad for p in t.model.teacher.parameters())
        assert not t.model.teacher.training
    assert t.model.validation_scores() is None
    assert t.config.loss.teacher_sha256 == sha256(checkpoint)


def test_a_narrow_teacher_gets_the_narrowest_student_that_learns(
    data: Path,
    teacher: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """20x fewer MACs than an ngf-8 teacher would be an ngf-1 student."""
    config = distill(teacher, data)
    del config["generator"]["options"]["ngf"]
    t = make_engine(config, tmp_path / "run")
    ngf = t.config.generator.options["ngf"]
    shape = (3, 256, 256)
    ratio = count_macs(TEACHER.build(), shape) / count_macs(t.model.G, shape)
    assert ngf == 4 and ratio < 20
    message = capsys.readouterr().err
    assert "warning: loss.compression 20 would make the student ngf" in message
    assert f"it is ngf 4, {ratio:.1f}x fewer MACs than the teacher" in message
    assert "distill a wider teacher or set generator.options.ngf" in message


def test_a_unet_teacher_is_distilled_at_taps_of_the_students_resolution(
    data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The default taps (9, 12, 15, 18: the student's 1/4 resolution) pair with the U-Net's
    taps of that resolution, spread over its encoder and decoder; an explicit mismatch lists
    the teacher's taps by resolution."""
    unet = GeneratorSpec("unet", 3, 3, {"ngf": 4, "num_downs": 4})
    config = distill(teacher_file(tmp_path, unet), data)
    t = make_engine(config, tmp_path / "run")
    chosen = t.config.loss.teacher_layers
    x = torch.zeros(1, 3, SIZE, SIZE)
    teacher, student = t.model.teacher, t.model.G
    sizes = [f.shape[2:] for f in teacher(x, layers=list(range(len(teacher.tap_points()))))]
    quarter = [i for i, size in enumerate(sizes) if size == (SIZE // 4, SIZE // 4)]
    assert chosen == sorted(chosen) and chosen[0] == quarter[0] and chosen[-1] == quarter[-1]
    assert len(set(chosen)) == 4 and set(chosen) <= set(quarter)
    assert "9->" in capsys.readouterr().err
    assert (
        yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["loss"]["teacher_layers"]
        == chosen
    )  # a resume pairs the same taps
    losses = t.model.train_step(next(iter(t.loader)), t.stepper)
    assert torch.isfinite(losses["G_distill"]) and losses["G_distill"] > 0
    assert [s.shape[2:] for s in student(x, layers=t.config.loss.distill_layers)] == [
        sizes[i] for i in chosen
    ]

    config["loss"]["teacher_layers"] = [0, 1, 2, 3]  # 0 and 1 are at half the resolution
    with pytest.raises(ValueError) as error:
        make_engine(config, tmp_path / "mismatch")
    message = str(error.value)
    assert f"the teacher's tap 0 is {tuple(sizes[0])}, the student's tap 9" in message
    listed = f"{(SIZE // 4, SIZE // 4)}: {quarter[0]}-{quarter[2]}, {quarter[3]}-{quarter[5]}"
    assert listed in message and "leave teacher_layers unset" in message


@pytest.mark.slow
def test_a_bundled_model_name_is_a_teacher(data: Path, tmp_path: Path) -> None:
    """`demo`, a U-Net: the default taps pair with its taps of the same resolution."""
    from translate.models.loading import bundled_path

    run_dir = tmp_path / "run"
    args = ["distill", "demo", "--data", str(data), "--run-dir", str(run_dir), "--no-progress"]
    options = ["train.max_steps=1", "data.num_workers=0"]
    options += ["log.tensorboard=false", "discriminator.options={ndf: 4, n_layers: 2}"]
    result = CliRunner().invoke(main, [*args, *(a for o in options for a in ("--set", o))])
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["loss"]["teacher_sha256"] == sha256(bundled_path("demo"))
    assert len(config["loss"]["teacher_layers"]) == 4
    student = load_generators(run_dir / "generator_latest.safetensors")
    assert student.specs["AtoB"].options["ngf"] == 4  # 20x fewer MACs would be ngf 1


def test_a_bad_teacher_is_one_line_naming_it(data: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "teacher.safetensors"
    result = CliRunner().invoke(main, ["distill", str(missing), "--data", str(data)])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: teacher: {missing}: no such file or directory"
    result = CliRunner().invoke(main, ["distill", "--data", str(data)])
    assert result.exit_code == 2 and "give a TEACHER and --data DIR" in result.output


def test_worldmaps_distill_config_loads() -> None:
    from translate.training.configure import load_config

    config = load_config(CONFIGS / "worldmaps_distill.yaml")
    assert config.model == "distill" and config.loss.teacher.endswith(".safetensors")
    assert config.generator.name == "shuffle_resnet"
    teacher = load_config(CONFIGS / "worldmaps_teacher.yaml")
    assert teacher.generator.name == "resnet_9blocks"


def test_a_six_block_student_pairs_its_taps_with_the_teachers(
    data: Path,
    teacher: Path,
    tmp_path: Path,
) -> None:
    config = distill(teacher, data)
    config["generator"]["name"] = "mobile_resnet_6blocks"
    config["loss"].update(distill_layers=[9, 11, 13, 15], teacher_layers=[9, 12, 15, 18])
    t = make_engine(config, tmp_path / "six")
    losses = t.model.train_step(next(iter(t.loader)), t.stepper)
    assert torch.isfinite(losses["G_distill"]) and losses["G_distill"] > 0
    config["loss"]["teacher_layers"] = [9, 12, 15, 21]  # 21: the first upsampling, 2x larger
    with pytest.raises(ValueError, match=r"'loss.teacher_layers': the teacher's tap 21 is"):
        make_engine(config, tmp_path / "mismatch")


def test_the_student_s_trunk_gives_the_default_taps(
    data: Path, teacher: Path, tmp_path: Path
) -> None:
    """Unset distill_layers are the student's trunk taps, recorded in config.yaml; a student
    without a residual trunk (a U-Net) is told to list its taps."""
    config = distill(teacher, data)
    config["generator"] = {"name": "shuffle_resnet", "options": {"ngf": 2}}
    t = make_engine(config, tmp_path / "shuffle")
    assert t.config.loss.distill_layers == [3, 5, 7, 9]  # the stem, blocks 2, 4 and 6
    losses = t.model.train_step(next(iter(t.loader)), t.stepper)
    assert torch.isfinite(losses["G_distill"]) and losses["G_distill"] > 0
    recorded = yaml.safe_load((tmp_path / "shuffle" / "config.yaml").read_text())
    assert recorded["loss"]["distill_layers"] == [3, 5, 7, 9]
    config["generator"] = {"name": "unet_256", "options": {"ngf": 2, "num_downs": 4}}
    with pytest.raises(ValueError, match=r"'loss.distill_layers': the student unet_256 has no"):
        make_engine(config, tmp_path / "unet")


def test_the_stage_resolves_what_the_trainer_receives(
    teacher: Path,
    data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Distill.prepare runs once, before the trainer: the trainer is built from the config it
    resolved (the teacher's SHA-256, the student's width), which config.yaml records, and
    holds the teacher it loaded; the caller's config is left as it was."""
    staged: list[Prepared] = []
    prepare = Distill.prepare.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        Distill, "prepare", classmethod(lambda cls, c: staged.append(prepare(cls, c)) or staged[-1])
    )
    config = distill(teacher, data)
    del config["generator"]["options"]["ngf"]
    given = from_dict(config)
    t = Engine(given, tmp_path / "run", progress=False)
    (prepared,) = staged
    assert t.config is prepared.config and t.model.frozen_teacher is prepared.inputs["teacher"]
    assert prepared.config.loss.teacher_sha256 == sha256(teacher)
    assert prepared.config.generator.options["ngf"] == NARROWEST  # 20x fewer MACs: ngf 1
    assert given.loss.teacher_sha256 == "" and "ngf" not in given.generator.options
    recorded = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert recorded["loss"]["teacher_sha256"] == sha256(teacher)
    assert recorded["generator"]["options"]["ngf"] == NARROWEST
    x = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    expected = load_generators(teacher).generators["AtoB"](x)
    with torch.no_grad():
        assert torch.allclose(t.model.teacher(x), expected, atol=1e-6)
    assert not any("teacher" in key for key in t.model.state_dict())


def test_a_bad_teacher_file_fails_in_the_stage_before_any_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreadable teacher is one line naming the file, raised before the runtime, the data
    (here a missing folder, which would be an error of its own) or the run directory."""
    bad = tmp_path / "teacher.safetensors"
    bad.write_bytes(b"not a generator file")

    def no_setup(train: object) -> None:
        raise AssertionError("training setup ran before the stage")

    monkeypatch.setattr(Runtime, "resolve", no_setup)
    config = from_dict(distill(bad, tmp_path / "no data"))
    with pytest.raises(ValueError) as caught:
        Engine(config, tmp_path / "run", progress=False)
    message = str(caught.value)
    assert message.startswith(f"teacher: {bad}") and "\n" not in message
    assert not (tmp_path / "run").exists()
