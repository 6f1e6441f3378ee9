"""Every config the repository ships loads: its keys exist and its values pass their checks
(a typo in a config the docs tell users to train would otherwise surface only at its run)."""

from pathlib import Path

import pytest

from translate.training.configure import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
# keys naming a file an earlier step of the config's walk-through makes
MADE_BEFORE = {"domain_adaptation_semantic": "loss.task_model"}


def test_configs_are_found() -> None:
    assert len(CONFIGS) >= 20


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_shipped_config_loads(path: Path, tmp_path: Path) -> None:
    overrides = []
    if path.stem in MADE_BEFORE:
        (tmp_path / "made_before").touch()
        overrides = [f"{MADE_BEFORE[path.stem]}={tmp_path / 'made_before'}"]
    config = load_config(path, overrides)
    assert config.model and config.data.root
