"""tools/unpaired_equal_time.py's pure parts: each trainer's config, the launch batches and
the table. The training and scoring it drives are `translate train`/`convert`/`evaluate`."""

from pathlib import Path

import pytest
from conftest import tool_module

from translate.training.configure import load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def equal_time():
    with tool_module("unpaired_equal_time") as module:
        yield module


def test_each_trainer_runs_its_config_for_the_time_on_one_thread(equal_time, tmp_path):
    models = {}
    for entry in equal_time.TRAINERS:
        config = load_config(ROOT / entry.config, equal_time.overrides(entry, tmp_path, 2.5))
        assert config.train.max_minutes == 2.5 and config.train.threads == 1
        assert config.data.root == str(tmp_path) and config.data.num_workers == 0
        assert config.schedule.decay_epochs == 0  # a constant learning rate
        # the only evaluation is the last: none within the time
        assert config.log.eval_every == config.log.checkpoint_every == equal_time.FOREVER
        models[entry.name] = (config.model, getattr(config.loss, "mode", None))
    assert models == {
        "FastCUT": ("cut", "fastcut"),
        "CUT": ("cut", "cut"),
        "FastCUT-nce10": ("cut", "fastcut"),
        "CycleGAN": ("cyclegan", None),
    }
    command = equal_time.train_command(equal_time.TRAINERS[0], tmp_path, 2.5, tmp_path / "r")
    assert command[1:5] == [
        "-m",
        "translate.cli",
        "train",
        str(ROOT / "configs/worldmaps_cut.yaml"),
    ]
    assert "train.max_minutes=2.5" in command


def test_trainers_start_in_batches_of_the_cores_given(equal_time):
    entries = equal_time.TRAINERS
    two = equal_time.batches(entries, [0, 1])
    assert [[(e.name, c) for e, c in batch] for batch in two] == [
        [("FastCUT", 0), ("CycleGAN", 1)],
        [("CUT", 0), ("FastCUT-nce10", 1)],
    ]
    assert [len(batch) for batch in equal_time.batches(entries, [2, 3, 5])] == [3, 1]


def test_the_table_has_a_row_per_trainer_and_dashes_for_what_was_not_scored(equal_time):
    report = {
        "minutes": 10.0,
        "machine": {"cpu": "Xeon", "cpu flags": "avx2"},
        "uptime_before": "load average: 0.01",
        "uptime_after": "load average: 2.00",
        "rows": {
            "FastCUT": {"steps": 1200, "s_per_step": 0.5, "psnr": 18.391, "ssim": 0.7341},
            "identity (testA as it is)": {"psnr": 6.48, "ssim": 0.28},
        },
    }
    table = equal_time.markdown(report)
    assert "10 minutes per trainer, one core each (Xeon, avx2)" in table
    assert "| FastCUT | 1,200 | 0.500 | 18.39 | 0.734 | – | – |" in table
    assert "| identity (testA as it is) | – | – | 6.48 | 0.280 | – | – |" in table
