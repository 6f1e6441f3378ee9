"""One conversion driver: a source only says which files are its own and converts a job;
planning, the overlap checks, the manifest, skipping, sharding and the summary are the
driver's, for any source (a toy text source here, beside the image one)."""

import json
from pathlib import Path

import numpy as np
import pytest

from translate.conversion.convert import IMAGES
from translate.conversion.manifest import MANIFEST_NAME
from translate.conversion.runner import Job, Run, run_conversion
from translate.data.images import write_image
from translate.inference.options import ConvertOptions
from translate.inference.translator import Translator


class TextSource:
    """Upper-cases .txt files: no pixels, so all it shows is the driver's work."""

    noun = "text"
    groups = ()

    def __init__(self):
        self.seen: list[Path] = []

    def accepts(self, path: Path) -> bool:
        return path.suffix == ".txt"

    def output(self, rel: Path, dst: Path, options: ConvertOptions) -> Path:
        return dst / rel

    def check_file_output(self, dst: Path, options: ConvertOptions) -> None:
        pass

    def convert(self, jobs: list[Job], run: Run) -> None:
        for job in jobs:
            self.seen.append(job.src)
            job.dst.parent.mkdir(parents=True, exist_ok=True)
            job.dst.write_text(job.src.read_text().upper())
            run.summary.converted += 1


@pytest.fixture(scope="module")
def translator(tiny_generator_file):
    return Translator.load(tiny_generator_file, device="cpu", precision="fp32")


@pytest.fixture
def src(tmp_path):
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "sub" / "b.txt").write_text("b")
    write_image(root / "c.png", np.zeros((8, 8, 3), np.uint8))
    return root


def test_the_driver_plans_claims_skips_and_sums_up_for_any_source(src, tmp_path, translator):
    text, dst = TextSource(), tmp_path / "out"
    options = ConvertOptions(progress=False)
    summary = run_conversion(src, dst, translator, options, (text,))
    assert (summary.converted, summary.skipped, summary.failed) == (2, 0, [])
    assert (dst / "sub" / "b.txt").read_text() == "B" and not (dst / "c.png").exists()
    assert json.loads((dst / MANIFEST_NAME).read_text())["options"]["format"] == "same"

    again = run_conversion(src, dst, translator, options, (text,))
    assert (again.converted, again.skipped) == (0, 2) and len(text.seen) == 2
    with pytest.raises(ValueError, match="crf 20 here, None there"):  # one manifest check
        run_conversion(src, dst, translator, ConvertOptions(crf=20), (text,))
    with pytest.raises(ValueError, match="inside the input folder"):
        run_conversion(src, src / "out", translator, options, (text,))
    with pytest.raises(ValueError, match=r"c.png: not a text file \(expected one of their"):
        run_conversion(src / "c.png", dst, translator, options, (text,))


def test_each_rank_gets_its_share_of_all_sources_together(src, tmp_path, translator, monkeypatch):
    text = TextSource()
    monkeypatch.setenv("WORLD_SIZE", "2")
    converted = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        summary = run_conversion(
            src, tmp_path / "out", translator, ConvertOptions(progress=False), (IMAGES, text)
        )
        converted.append(summary.converted)
    assert converted == [2, 1]  # each source split apart: c.png and a.txt, then sub/b.txt
    outputs = sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.*")
    )
    assert outputs == ["a.txt", "c.png", "sub/b.txt", MANIFEST_NAME]


def test_a_source_refuses_options_that_change_pixels_of_another_kind(src, tmp_path, translator):
    """--center-crop changes what an image becomes; a text cannot honour it, so its files
    fail with the reason instead of silently ignoring it, and the images still convert."""
    text = TextSource()
    options = ConvertOptions(progress=False, center_crop=8)
    summary = run_conversion(src, tmp_path / "out", translator, options, (IMAGES, text))
    assert summary.converted == 1 and text.seen == []
    assert sorted(p.name for p, _ in summary.failed) == ["a.txt", "b.txt"]
    assert summary.failed[0][1].startswith("--center-crop is for images")
