"""Inputs named by a file list (--files-from) or a glob instead of a folder walk."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from translate.cli import main
from translate.conversion.runner import listed_inputs


def _save(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "in"
    for i, name in enumerate(["a.png", "b.png", "sub/c.png", "sub/d.jpg"]):
        _save(src / name, i)
    (src / "notes.txt").write_text("not an image")
    return src


def _outputs(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_files_from_converts_the_listed_files_only_and_fails_bad_names(
    tiny_generator_file, folder, tmp_path
):
    listing = tmp_path / "list.txt"
    listing.write_text(
        f"sub/c.png\n\n# skipped\n{folder / 'a.png'}\nsub/c.png\nnotes.txt\nmissing.png\n"
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["convert", str(tiny_generator_file), str(folder), str(out), "--no-progress",
         "--files-from", str(listing)],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "converted 2, skipped 0 (already there), failed 2" in result.output
    assert f"failed: {folder / 'notes.txt'}: not an image or video file" in result.output
    assert f"failed: {folder / 'missing.png'}:" in result.output
    assert _outputs(out) == ["a.png", "sub/c.png", "translate-convert.json"]


def test_glob_selects_matching_files_under_input(tiny_generator_file, folder, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["convert", str(tiny_generator_file), str(folder), str(out), "--no-progress",
         "--glob", "sub/*"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _outputs(out) == ["sub/c.png", "sub/d.jpg", "translate-convert.json"]


def test_listed_inputs_refuse_paths_outside_input_and_two_selections(folder, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("a.png\n../elsewhere.png\n")
    with pytest.raises(ValueError, match=r"list.txt:2: ../elsewhere.png is not under INPUT"):
        listed_inputs(folder, listing)
    listing.write_text(f"{tmp_path / 'x.png'}\n")
    with pytest.raises(ValueError, match="is not under INPUT"):
        listed_inputs(folder, listing)
    with pytest.raises(ValueError, match="--files-from and --glob both choose the inputs"):
        listed_inputs(folder, listing, "*.png")
    with pytest.raises(ValueError, match="relative to INPUT"):
        listed_inputs(folder, None, str(folder / "*.png"))
    assert listed_inputs(folder) is None
    assert listed_inputs(folder, None, "*.png") == [folder / "a.png", folder / "b.png"]


def test_a_list_needs_a_folder_as_input(tiny_generator_file, folder, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("a.png\n")
    result = CliRunner().invoke(
        main,
        ["convert", str(tiny_generator_file), str(folder / "a.png"), str(tmp_path / "o"),
         "--files-from", str(listing)],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "a file list or glob names files under INPUT; give their folder" in result.output
