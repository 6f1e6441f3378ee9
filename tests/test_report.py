import json

import numpy as np
import pytest
import torch
from PIL import Image

from translate.networks import build_discriminator
from translate.training.monitor import (
    d_accuracy,
    diversity_ratio,
    monitor_batch,
    monitor_warnings,
)
from translate.training.report import RunReport, _series, read_metrics, sample_grid

# ---------------------------------------------------------------- monitoring


def test_d_accuracy_threshold_depends_on_mode():
    # 3 of 4 patches above 0.3: above the logit threshold 0, below LSGAN's 0.5
    pred = torch.tensor([0.3, 0.3, 0.3, -1.0]).view(1, 1, 2, 2)
    assert d_accuracy(pred, "vanilla", real=True) == pytest.approx(0.75)
    assert d_accuracy(pred, "vanilla", real=False) == pytest.approx(0.25)
    assert d_accuracy(pred, "hinge", real=True) == pytest.approx(0.75)
    assert d_accuracy(pred, "lsgan", real=True) == pytest.approx(0.0)
    assert d_accuracy(pred, "lsgan", real=False) == pytest.approx(1.0)


def test_d_accuracy_multiscale_averages_scales_and_uses_last_item():
    features = torch.full((1, 4, 8, 8), 5.0)  # would count as "real" if it were used
    scale1 = [features, torch.ones(1, 1, 4, 4)]  # all right for real
    scale2 = [features, -torch.ones(1, 1, 2, 2)]  # all wrong for real
    assert d_accuracy([scale1, scale2], "vanilla", real=True) == pytest.approx(0.5)


def test_d_accuracy_on_the_zoo_multiscale_discriminator():
    disc = build_discriminator("multiscale", in_channels=3, ndf=4, n_layers=1, num_scales=2)
    pred = disc(torch.rand(2, 3, 32, 32))
    real = d_accuracy(pred, "lsgan", real=True)
    assert 0.0 <= real <= 1.0
    assert d_accuracy(pred, "lsgan", real=False) == pytest.approx(1.0 - real)


def test_d_accuracy_rejects_unknown_mode():
    with pytest.raises(ValueError, match="wasserstein"):
        d_accuracy(torch.zeros(1, 1, 2, 2), "wasserstein", real=True)


def test_monitor_batch_known_answers():
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    collapsed = real[:1].expand(4, -1, -1, -1)  # every output the same image
    d_real = torch.ones(4, 1, 3, 3)  # all judged real
    d_fake = torch.cat([torch.ones(1, 1, 3, 3), -torch.ones(3, 1, 3, 3)])  # 3 of 4 fake
    stats = monitor_batch(collapsed, real, d_real, d_fake, "vanilla")
    assert stats["diversity_ratio"] == pytest.approx(0.0)
    assert stats["d_acc_real"] == pytest.approx(1.0)
    assert stats["d_acc_fake"] == pytest.approx(0.75)
    assert monitor_batch(real, real, d_real, d_fake, "vanilla")["diversity_ratio"] == (
        pytest.approx(1.0)
    )
    assert "diversity_ratio" not in monitor_batch(real[:1], real[:1], d_real, d_fake, "lsgan")


def test_diversity_ratio_scales_and_guards_identical_targets():
    real = torch.rand(4, 3, 8, 8) * 2 - 1
    assert diversity_ratio(real * 0.5, real) == pytest.approx(0.5, rel=1e-4)
    same = torch.zeros(4, 3, 8, 8)
    assert diversity_ratio(real, same) == 1.0  # nothing to compare against, no false alarm


def test_monitor_warnings():
    assert monitor_warnings({"diversity_ratio": 0.9, "d_acc_real": 0.7, "d_acc_fake": 0.6}) == []
    # An untrained generator is uniform: no alarm until the ratio stays low or falls.
    assert monitor_warnings({"diversity_ratio": 0.05}) == []
    assert monitor_warnings({"diversity_ratio": 0.05}, [0.01]) == []
    stuck = monitor_warnings({"diversity_ratio": 0.05}, [0.01, 0.02])
    assert len(stuck) == 1 and "mode collapse" in stuck[0] and "3 evaluations" in stuck[0]
    fell = monitor_warnings({"diversity_ratio": 0.05}, [0.01, 0.8])
    assert len(fell) == 1 and "more varied before" in fell[0]
    strong = monitor_warnings({"d_acc_real": 0.99, "d_acc_fake": 0.98})
    assert len(strong) == 1 and "overpowers" in strong[0]
    fooled = monitor_warnings({"d_acc_real": 0.99, "d_acc_fake": 0.01})
    assert len(fooled) == 1 and "fools" in fooled[0]
    assert monitor_warnings({"diversity_ratio": 0.3}, [0.6], collapse_ratio=0.5) != []
    assert monitor_warnings({}) == []


# ---------------------------------------------------------------- run report


def test_log_appends_flushed_json_lines_and_resumes(tmp_path):
    report = RunReport(tmp_path, tensorboard=False)
    report.log(1, 0, {"G_GAN": torch.tensor(0.5), "D_real": 1})
    # flushed: readable before close, as after a crash
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"step": 1, "epoch": 0, "G_GAN": 0.5, "D_real": 1.0}
    report.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "ep')  # a line cut short by a kill
    with RunReport(tmp_path, tensorboard=False) as resumed:
        resumed.log(3, 1, {"G_GAN": 0.25}, warnings=["possible mode collapse"])
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 3]
    assert records[1]["warnings"] == ["possible mode collapse"]


def test_a_step_logged_again_after_resume_keeps_its_latest_value():
    records = [
        {"step": 1, "epoch": 0, "G": 3.0},
        {"step": 2, "epoch": 0, "G": 2.0},  # logged, then the run died before a checkpoint
        {"step": 2, "epoch": 0, "G": 1.5},  # the resumed run logs step 2 again
        {"step": 3, "epoch": 0, "G": 1.0, "warnings": ["text is not plotted"]},
    ]
    assert _series(records) == {"G": ([1, 2, 3], [3.0, 1.5, 1.0])}


def test_log_names_a_non_numeric_metric(tmp_path):
    with RunReport(tmp_path, tensorboard=False) as report, pytest.raises(ValueError, match="name"):
        report.log(1, 0, {"name": "abc"})


def test_sample_grid_layout_and_gray():
    n, h, w = 2, 16, 20
    images = {
        "input": torch.full((n, 1, h, w), -1.0),  # black, one channel
        "output": torch.full((n, 3, h, w), 1.0),  # white
        "target": torch.zeros(n, 3, h, w),  # mid gray
    }
    grid = sample_grid(images)
    pad, header = 2, 14
    assert grid.shape == (header + pad + n * (h + pad), pad + 3 * (w + pad), 3)
    top = header + pad
    for row in range(n):
        y = top + row * (h + pad) + h // 2
        assert (grid[y, pad + w // 2] == 0).all()  # gray input shown black in all channels
        assert (grid[y, pad + (w + pad) + w // 2] == 255).all()
        assert (np.abs(grid[y, pad + 2 * (w + pad) + w // 2].astype(int) - 128) <= 1).all()
    with pytest.raises(ValueError, match="differ"):
        sample_grid({"a": torch.zeros(2, 3, 8, 8), "b": torch.zeros(3, 3, 8, 8)})


def test_samples_index_and_plot(tmp_path):
    with RunReport(tmp_path, tensorboard=False) as report:
        for step in range(1, 6):
            report.log(step, step // 3, {"G_GAN": 1.0 / step, "D_real": 0.5, "lr": 2e-4})
        report.log(5, 1, {"val_l1": 0.3, "diversity_ratio": 0.1}, warnings=["collapse <here>"])
        batch = {"input": torch.zeros(2, 3, 16, 16), "output": torch.ones(2, 3, 16, 16)}
        first = report.samples(0, 2, batch)
        second = report.samples(1, 5, batch)
        report.update_index()
    assert first.name == "epoch000_step0000002.png"
    assert second.name == "epoch001_step0000005.png"
    assert Image.open(second).size == (2 + 2 * 18, 14 + 2 + 2 * 18)
    page = (tmp_path / "index.html").read_text()
    assert page.index(second.name) < page.index(first.name)  # newest first
    assert "losses.png" in page
    assert "collapse &lt;here&gt;" in page  # warnings shown, escaped
    with Image.open(tmp_path / "losses.png") as plot:
        assert plot.size[0] > 100 and plot.size[1] > 100
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temp files


def test_update_index_before_any_metrics(tmp_path):
    with RunReport(tmp_path, tensorboard=False) as report:
        report.update_index()
    assert (tmp_path / "losses.png").exists() and (tmp_path / "index.html").exists()


def test_disabled_report_writes_nothing(tmp_path):
    run = tmp_path / "run"
    report = RunReport(run, enabled=False)
    report.log(1, 0, {"G_GAN": 1.0})
    assert report.samples(0, 1, {"x": torch.zeros(2, 3, 8, 8)}) is None
    report.update_index()
    report.close()
    assert not run.exists()


def test_tensorboard_events_written(tmp_path):
    pytest.importorskip("tensorboard")
    with RunReport(tmp_path) as report:
        report.log(1, 0, {"G_GAN": 1.0})
        report.samples(0, 1, {"x": torch.zeros(2, 3, 8, 8)})
        report.update_index()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
