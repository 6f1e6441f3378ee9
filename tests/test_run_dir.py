"""RunDir: the one place that knows where a training run's files live."""

from pathlib import Path

import pytest

from translate.core.run_dir import RunDir


def test_checkpoints_are_ordered_by_step_not_by_name(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    for step in (10, 2, 300):
        run.state(step).parent.mkdir(exist_ok=True)
        run.state(step).touch()
    (run.checkpoints / "state_7.pt.tmp").touch()  # a write in progress is no checkpoint
    assert [p.name for p in run.states()] == ["state_2.pt", "state_10.pt", "state_300.pt"]


def test_the_generator_is_the_best_else_the_latest(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    with pytest.raises(FileNotFoundError, match="generator_best.safetensors and generator_lat"):
        run.generator()
    run.latest.touch()
    assert run.generator() == tmp_path / "generator_latest.safetensors"
    run.best.touch()
    assert run.generator() == tmp_path / "generator_best.safetensors"


def test_samples_are_read_back_from_the_names_they_are_written_under(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    assert run.samples() == []  # no samples/ yet
    run.samples_dir.mkdir()
    for epoch, step in ((2, 40), (1, 8), (12, 1000)):
        run.sample(epoch, step).touch()
    (run.samples_dir / "notes.png").touch()
    assert [(s.epoch, s.step) for s in run.samples()] == [(1, 8), (2, 40), (12, 1000)]


def test_a_run_is_a_folder_holding_its_config_or_metrics(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    assert not run.is_run() and run.changed() == 0.0
    run.metrics.write_text("")
    assert run.is_run() and run.changed() > 0
