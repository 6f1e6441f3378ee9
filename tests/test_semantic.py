"""The semantic-consistency loss (CyCADA) of the unpaired trainers: it lowers when a generator
can keep a toy task model's labels, resume stays exact with it on, a bad loss.task_model is
one line naming the key, and lambda_semantic 0 reads nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from test_cut import cut
from torch import nn
from training_helpers import make_engine, resumed_run, tiny

from translate.cli import main
from translate.models.model_file import GeneratorSpec
from translate.training.configure import from_dict
from translate.training.engine import _to_device
from translate.training.semantic import SemanticConsistency, load_task_model

pytestmark = pytest.mark.usefixtures("one_thread")


def toy_task_model(path: Path, classes: int) -> Path:
    """A 1x1-conv "segmenter" that labels a pixel by the sign of its red channel: two class
    logits (-r, r), or (``classes`` 1) the binary logit r; saved as TorchScript."""
    conv = nn.Conv2d(3, classes, 1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[-1, 0] = 4.0
        if classes == 2:
            conv.weight[0, 0] = -4.0
    torch.jit.script(conv).save(str(path))
    return path


@pytest.fixture(scope="module")
def task_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return toy_task_model(tmp_path_factory.mktemp("task") / "segmenter.ts", 2)


def semantic(config: dict, task_model: Path, weight: float = 1.0) -> dict:
    config["loss"] = {**config.get("loss", {}), "lambda_semantic": weight}
    config["loss"]["task_model"] = str(task_model)
    return config


@pytest.mark.parametrize("classes", [2, 1])
def test_the_loss_alone_lowers_when_the_generator_can_keep_the_labels(
    tmp_path: Path, classes: int
) -> None:
    torch.manual_seed(0)
    net = load_task_model(str(toy_task_model(tmp_path / "task.pt", classes)))
    loss_fn = SemanticConsistency(net, weight=1.0)
    G = GeneratorSpec.declared("resnet", 3, 3, {"ngf": 4, "n_blocks": 1}).build()
    optimizer = torch.optim.Adam(G.parameters(), lr=2e-3)
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    losses = []
    for _ in range(40):
        loss = loss_fn(images, G(images))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    # frozen: the task model took no gradient and stayed in eval mode
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())
    assert not net.training


@pytest.mark.parametrize("model", ["cut", "cyclegan"])
def test_a_step_logs_g_semantic_and_keeps_the_task_model_out_of_the_run(
    data: Path,
    tmp_path: Path,
    task_model: Path,
    model: str,
) -> None:
    config = cut(data) if model == "cut" else tiny(model, data)
    t = make_engine(semantic(config, task_model), tmp_path)
    t.model.train()
    assert not t.model.semantic.net.training
    batch = _to_device(next(iter(t.loader)), t.device, False)
    losses = t.model.train_step(batch, t.stepper)
    assert "G_semantic" in losses and torch.isfinite(losses["G_semantic"])
    assert not any("semantic" in k or "net." in k for k in t.model.state_dict())
    task_params = {id(p) for p in t.model.semantic.net.parameters()}
    for optimizer in t.stepper.optimizers.values():
        for group in optimizer.param_groups:
            assert not task_params & {id(p) for p in group["params"]}


@pytest.mark.parametrize("model", ["fastcut", "cyclegan"])
def test_resume_is_exact_with_the_semantic_loss(
    data: Path,
    tmp_path: Path,
    task_model: Path,
    model: str,
) -> None:
    """FastCUT flips its input half of the time: the term compares un-flipped images."""
    sections = {"train": {"batch_size": 2, "max_steps": 6}}
    config = cut(data, "fastcut", **sections) if model == "fastcut" else tiny(model, data)
    config["train"] = sections["train"]
    full, _ = resumed_run(semantic(config, task_model), tmp_path, half=3)
    assert full.model.semantic is not None


def test_a_missing_or_unreadable_task_model_is_one_line_naming_the_key(
    data: Path,
    tmp_path: Path,
) -> None:
    for model in ("cut", "cyclegan"):
        config = tiny(model, data, loss={"lambda_semantic": 1.0})
        with pytest.raises(ValueError, match=r"^config key 'loss.task_model': .*needs a task"):
            from_dict(config)
        with pytest.raises(ValueError, match=r"^config key 'loss.task_model': .*no such file"):
            from_dict(semantic(config, tmp_path / "absent.pt"))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ValueError, match=r"^config key 'loss.task_model': .*garbage\.pt") as exc:
        make_engine(semantic(tiny("cut", data), garbage), tmp_path / "run")
    assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match=r"'loss.lambda_semantic': must be 0 or more"):
        from_dict(semantic(tiny("cut", data), garbage, weight=-1.0))
    # ... and from the command line, a non-zero exit with the one line
    config_path = tmp_path / "bad.yaml"
    config_path.write_text(yaml.safe_dump(semantic(tiny("cyclegan", data), garbage)))
    args = ["train", str(config_path), "--run-dir", str(tmp_path / "cli"), "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if "loss.task_model" in line]
    assert len(lines) == 1 and "garbage.pt" in lines[0], result.output


def test_channels_that_differ_are_refused(data: Path, task_model: Path) -> None:
    config = semantic(tiny("cyclegan", data, data={"output_channels": 1}), task_model)
    config["loss"]["lambda_identity"] = 0
    with pytest.raises(ValueError, match=r"'loss.lambda_semantic'.*data.input_channels is 3"):
        from_dict(config)


def test_lambda_semantic_0_loads_nothing(data: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model")
    t = make_engine(semantic(tiny("cyclegan", data), garbage, weight=0.0), tmp_path / "run")
    assert t.model.semantic is None
    batch = _to_device(next(iter(t.loader)), t.device, False)
    assert "G_semantic" not in t.model.train_step(batch, t.stepper)
