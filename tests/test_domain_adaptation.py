"""docs/domain-adaptation.md: its commands run as written (smallest settings) and its script's
land masks and table."""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "domain_adaptation", ROOT / "tools" / "domain_adaptation.py"
)
assert _spec is not None and _spec.loader is not None
da = importlib.util.module_from_spec(_spec)
sys.modules["domain_adaptation"] = da
_spec.loader.exec_module(da)

# Each command of the page at the smallest settings (the last of a repeated option wins).
SMALL = {
    "prepare": ["--width", "256"],  # 8 x 4 tiles of 32 px
    "train": ["--set", "train.max_steps=4"],
    "score": ["--steps", "5", "--seeds", "1"],
}


def test_land_mask_tells_the_elevation_maps_sea_from_its_land() -> None:
    # Colours of the elevation map: mid-Pacific, Sahara, Amazon lowland (green), Antarctic ice.
    pixels = np.array([[[11, 105, 199], [237, 199, 162], [40, 150, 60], [250, 250, 250]]], np.uint8)
    assert da.land_mask(pixels).tolist() == [[0, 1, 1, 1]]


def test_a_tile_without_its_mask_is_an_error_naming_it(tmp_path: Path) -> None:
    da.write_image(tmp_path / "tiles" / "r00_c00.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "masks").mkdir()
    with pytest.raises(SystemExit, match="no mask in .*masks for r00_c00.png"):
        da.load_tiles(tmp_path / "tiles", tmp_path / "masks")


@pytest.mark.slow
def test_the_domain_adaptation_tutorial_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every command of the page in order: prepare, CUT training, convert, score; the score
    prints the page's table with its three rows and scores in [0, 1]."""
    from click.testing import CliRunner

    from translate.cli import main

    text = (ROOT / "docs" / "domain-adaptation.md").read_text()
    lines = [
        line.strip()
        for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)
        for line in block.replace("\\\n", " ").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    commands = [shlex.split(line, comments=True) for line in lines]
    assert [c[:2] if c[0] == "translate" else c[:3] for c in commands] == [
        ["python", "tools/domain_adaptation.py", "prepare"], ["translate", "train"],
        ["translate", "convert"], ["python", "tools/domain_adaptation.py", "score"],
    ]  # fmt: skip
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    monkeypatch.chdir(tmp_path)
    for words in commands:
        if words[0] == "translate":
            args = words[1:] + SMALL.get(words[1], [])
            result = CliRunner().invoke(main, args)
            assert result.exit_code == 0, (args, result.output)
        else:
            capsys.readouterr()
            da.main(words[2:] + SMALL[words[2]])
    table = capsys.readouterr().out.strip().splitlines()
    assert table[:2] == da.format_table([]).splitlines()
    assert table[0] in text  # the page shows the same table
    rows = [row.strip("|").split("|") for row in table[2:]]
    assert [r[0].strip() for r in rows] == [label for label, _ in da.TRAINING_SETS]
    scores = [float(x) for r in rows for x in r[1:]]
    assert len(scores) == 6 and all(0 <= x <= 1 for x in scores)
