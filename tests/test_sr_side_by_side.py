"""tools/sr_side_by_side.py's pure parts: the two configs, reading both logs, the pace and
the table. BasicSR itself is not needed."""

import json

import pytest
import yaml
from conftest import tool_module

from translate.training.configure import from_dict


@pytest.fixture(scope="module")
def sbs():
    with tool_module("sr_side_by_side") as module:
        yield module


def test_basicsr_options_survive_yaml_as_numbers(sbs, tmp_path):
    recipe = sbs.Recipe(num_feat=8, num_conv=2, crop=64, every=7, rotations=False)
    text = yaml.safe_dump(sbs.basicsr_options(recipe, tmp_path / "train"))
    options = yaml.safe_load(text)
    train = options["datasets"]["train"]
    assert train["dataroot_lq"] == str(tmp_path / "train" / "A")
    assert train["dataroot_gt"] == str(tmp_path / "train" / "B")
    assert (train["gt_size"], train["use_hflip"], train["use_rot"]) == (64, True, False)
    # BasicSR's own files write !!float 2e-4: a plain "2e-4" would come back a string
    assert options["train"]["optim_g"]["lr"] == pytest.approx(2e-4)
    assert options["train"]["optim_g"]["betas"] == [0.9, 0.99]
    assert options["logger"]["save_checkpoint_freq"] == 7
    assert options["network_g"]["num_feat"] == 8 and options["network_g"]["num_conv"] == 2
    assert options["num_gpu"] == 0 and options["train"]["ema_decay"] == 0
    assert train["persistent_workers"] is True  # ours keeps its one worker too


def test_our_config_is_a_valid_config_of_the_same_recipe(sbs, tmp_path):
    recipe = sbs.Recipe(num_feat=8, num_conv=2, every=50, rotations=False)
    tree = sbs.our_config(recipe, tmp_path, "fp32", 32, sbs.our_schema())
    config = from_dict(tree)
    assert config.generator.options == {"scale": 4, "num_feat": 8, "num_conv": 2}
    assert (config.optim.lr_g, config.optim.beta1, config.optim.beta2) == (2e-4, 0.9, 0.99)
    assert config.train.batch_size == 16 and config.loss.lambda_gan == 0
    assert config.log.snapshot_every == 50 and config.log.eval_every > 10**6
    assert config.data.preprocess.crop_size == 32 and config.data.preprocess.flip


def test_our_config_turns_rotations_on_by_the_named_key_or_refuses(sbs, tmp_path):
    schema = {"preprocess": {"mode", "rotate"}, "train": {"seed", "threads"}}
    tree = sbs.our_config(sbs.Recipe(), tmp_path, "bf16", 128, schema)
    assert tree["data"]["preprocess"]["rotate"] is True
    assert tree["train"]["threads"] == 1
    off = sbs.our_config(sbs.Recipe(rotations=False), tmp_path, "bf16", 128, schema)
    assert off["data"]["preprocess"]["rotate"] is False  # model sr turns it on by default
    with pytest.raises(ValueError, match="--rotation-key turn"):
        sbs.our_config(sbs.Recipe(), tmp_path, "bf16", 128, schema, rotation_key="turn")


def test_iterations_read_from_both_logs(sbs):
    line = (
        "2026-12-06 09:09:18,293 INFO: [srvgg..][epoch:164, iter:   1,200, lr:(2.000e-04,)] "
        "[eta: 1 day, 0:00:01, time (data): 0.266 (0.229)] l_pix: 1.7223e-02"
    )
    assert sbs.basicsr_iteration(line) == 1200
    assert sbs.basicsr_iteration("2026-12-06 INFO: Saving models and training states.") is None
    assert sbs.our_iteration(json.dumps({"step": 7, "epoch": 1, "G_L1": 0.1})) == 7
    assert sbs.our_iteration(json.dumps({"step": 7, "val_PSNR_Y": 30.0})) is None
    assert sbs.our_iteration('{"step": 8, "G_L') is None


def test_tail_reads_only_whole_lines(sbs, tmp_path):
    log = tmp_path / "metrics.jsonl"
    tail = sbs.Tail(log, sbs.our_iteration)
    tail.poll()  # not there yet
    log.write_text('{"step": 1, "G_L1": 0.1}\n{"step": 2, "G_')
    tail.poll()
    assert list(tail.seen) == [1]
    with open(log, "a") as file:
        file.write('L1": 0.1}\n')
    tail.poll()
    assert list(tail.seen) == [1, 2]


def test_pace_counts_what_ended_before_the_stop(sbs):
    seen = {1: 110.0, 2: 111.0, 3: 112.0, 11: 120.0, 12: 130.5}
    pace = sbs.pace(seen, launched=100.0, stopped=130.0)
    assert pace["iterations"] == 11
    assert pace["startup_s"] == pytest.approx(10.0)
    assert pace["s_per_iteration"] == pytest.approx(1.0)
    assert sbs.pace({}, 0.0, 1.0)["iterations"] == 0


def test_markdown_rows_by_iteration(sbs):
    side = {"iterations": 200, "s_per_iteration": 0.7, "startup_s": 4.2}
    report = {
        "machine": {"cpu": "CPU", "cores": 2, "cpu flags": "avx2", "torch": "2"},
        "minutes": 20, "precision": "auto", "uptime_before": "up", "uptime_after": "up",
        "test": "photos", "training": {"BasicSR": side, "ours": {**side, "iterations": 100}},
        "scores": {
            "bicubic (PIL)": {"psnr_y": 33.97, "ssim_y": 0.9, "images": 11},
            "BasicSR": {"100": {"psnr_y": 32.5, "ssim_y": 0.8}, "200": {"error": "cut"}},
            "ours": {"100": {"psnr_y": 32.1, "ssim_y": 0.79}},
        },
    }  # fmt: skip
    table = sbs.markdown(report)
    assert "| 100 | 32.50 | 32.10 | 0.8000 | 0.7900 |" in table
    assert "| 200 | – | – | – | – |" in table
    assert "PIL bicubic: 33.97 dB" in table and "not scored: BasicSR 200: cut" in table
