"""Conversion on Ray Data against the local path, on one module-scoped local Ray instance."""

import os
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from translate.cli import main
from translate.conversion.convert import convert_folder
from translate.inference.options import ConvertOptions, TranslatorOptions
from translate.inference.translator import Translator

ray = pytest.importorskip("ray")
ray_inference = pytest.importorskip("translate.conversion.ray")

pytestmark = pytest.mark.slow  # each run starts its actors: seconds, even for tiny models


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One Ray instance for the module; the local path runs with an actor's one torch thread
    (a convolution's last bits follow the thread count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    torch.set_num_threads(threads)


def _save(path: Path, shape, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(arr).save(path)


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "in"
    _save(src / "a.png", (20, 24, 3), 1)
    _save(src / "b.jpg", (20, 24, 3), 2)
    _save(src / "nested" / "c.png", (17, 31, 3), 3)
    _save(src / "nested" / "gray.png", (20, 24), 4)
    (src / "nested" / "broken.png").write_bytes(b"not a png")
    return src


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _convert(*args: str):
    return CliRunner().invoke(main, ["convert", *args, "--no-progress"])


def test_cli_on_ray_writes_the_local_bytes_names_bad_files_and_exits_alike(
    tiny_generator_file, folder, tmp_path
):
    model = str(tiny_generator_file)
    local = _convert(model, str(folder), str(tmp_path / "local"))
    on_ray = _convert(model, str(folder), str(tmp_path / "ray"), "--actors", "2", "--ray")
    assert local.exit_code == on_ray.exit_code == 1  # the broken file
    for result in (local, on_ray):
        assert "converted 4, skipped 0 (already there), failed 1" in result.output
        assert f"failed: {folder / 'nested' / 'broken.png'}: not a readable image" in result.output
    # every output and the manifest, byte for byte
    assert _tree(tmp_path / "ray") == _tree(tmp_path / "local")
    assert len(_tree(tmp_path / "ray")) == 5

    rerun = _convert(model, str(folder), str(tmp_path / "ray"), "--ray")
    assert rerun.exit_code == 1
    assert "converted 0, skipped 4 (already there), failed 1" in rerun.output

    other = _convert(model, str(folder), str(tmp_path / "ray"), "--quality", "50", "--ray")
    assert other.exit_code == 1 and "holds outputs of another conversion" in other.output


def test_an_address_where_nothing_listens_fails_at_once_naming_it(
    tiny_generator_file, folder, tmp_path
):
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "out"
    result = _convert(str(tiny_generator_file), str(folder), str(out), "--ray", f"127.0.0.1:{port}")
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert f"Ray cluster at 127.0.0.1:{port}: nothing answers" in result.output
    assert not out.exists()  # refused before the manifest is claimed


def test_files_from_on_ray_converts_only_the_list_as_the_local_path_does(
    tiny_generator_file, folder, tmp_path
):
    listing = tmp_path / "list.txt"
    listing.write_text(f"a.png\n# a comment\n{folder / 'nested' / 'c.png'}\nmissing.png\n")
    model = str(tiny_generator_file)
    results = [
        _convert(model, str(folder), str(tmp_path / name), "--files-from", str(listing), *extra)
        for name, extra in (("local", ()), ("ray", ("--ray",)))
    ]
    assert [r.exit_code for r in results] == [1, 1]  # missing.png
    for result in results:
        assert f"failed: {folder / 'missing.png'}:" in result.output
    assert _tree(tmp_path / "ray") == _tree(tmp_path / "local")
    assert sorted(_tree(tmp_path / "ray")) == ["a.png", "nested/c.png", "translate-convert.json"]
    clean = _convert(model, str(folder), str(tmp_path / "g"), "--glob", "*.png", "--ray")
    assert clean.exit_code == 0 and sorted(_tree(tmp_path / "g")) == [
        "a.png",
        "translate-convert.json",
    ]


def _actor_pids() -> list[int]:
    """The processes of Ray Data's map actors, by the title Ray gives them."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if entry.name.isdigit() and title.startswith(b"ray::MapWorker"):
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the actor's process in /proc")
def _outputs(folder: Path) -> list[Path]:
    """The finished outputs: not the hidden temporary files an actor is writing."""
    return [p for p in folder.glob("*.png") if not p.name.startswith(".")]


def test_an_actor_killed_mid_run_loses_nothing_and_the_rerun_finishes(
    tiny_generator_file, tmp_path
):
    src = tmp_path / "in"
    for i in range(48):
        _save(src / f"{i:02d}.png", (64, 64, 3), i)
    dst = tmp_path / "ray"
    options = ConvertOptions(progress=False)
    translating = TranslatorOptions(device="cpu")
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["summary"] = ray_inference.convert_on_ray(
                src, dst, tiny_generator_file, translating, options, actors=1, jobs_per_batch=2
            )
        except Exception as exc:  # the kill may end the run: the rerun must then finish it
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    while not _outputs(dst) and time.monotonic() < deadline:
        time.sleep(0.01)
    pids = _actor_pids()
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    written_at_kill = {p.name: p.read_bytes() for p in _outputs(dst)}
    thread.join(timeout=180)
    assert 0 < len(written_at_kill) < 48  # the kill came mid-run

    rerun = ray_inference.convert_on_ray(src, dst, tiny_generator_file, translating, options)
    first = outcome.get("summary")
    done_first = first.converted if first is not None else 0
    assert rerun.failed == [] and rerun.converted + rerun.skipped == 48
    assert rerun.skipped >= len(written_at_kill) and rerun.converted <= 48 - done_first

    expected = tmp_path / "local"
    convert_folder(src, expected, Translator.load(tiny_generator_file, translating), options)
    assert _tree(dst) == _tree(expected)  # nothing partial, nothing lost, no temp files
    for name, data in written_at_kill.items():
        assert (dst / name).read_bytes() == data


def test_translate_dataset_translates_each_image_as_the_translator_does(tiny_generator_file):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(16, 20, 3)] * 3]
    images.append(rng.integers(0, 256, (12, 8, 3), dtype=np.uint8))
    ds = ray.data.from_items([{"image": img, "id": i} for i, img in enumerate(images)])
    translating = TranslatorOptions(device="cpu", precision="fp32")
    out = ray_inference.translate_dataset(ds, tiny_generator_file, translating, batch_size=2)
    rows = sorted(out.take_all(), key=lambda row: row["id"])
    expected = Translator.load(tiny_generator_file, translating).translate_batch(images)
    assert [row["id"] for row in rows] == [0, 1, 2, 3]
    for row, want in zip(rows, expected, strict=True):
        assert np.array_equal(row["image"], want)
    assert not np.array_equal(rows[0]["image"], images[0])
