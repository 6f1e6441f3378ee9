"""Images too large for the memory: estimated before translating, refused with a reason
naming --tile, or translated in smaller batches; never left to the OS to kill."""

import contextlib
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from tqdm import tqdm

from translate.cli import main
from translate.conversion import convert
from translate.conversion.convert import convert_folder
from translate.core import runtime
from translate.data.images import write_image
from translate.inference import memory
from translate.inference.memory import MemoryBudget, bytes_per_pixel
from translate.inference.translator import Translator
from translate.models.model_file import GeneratorSpec, LoadedModel, save_generators


def _model(path, ngf):
    torch.manual_seed(0)
    spec = GeneratorSpec("resnet_6blocks", 3, 3, {"ngf": ngf, "n_blocks": 1})
    save_generators(path, {"AtoB": (spec, spec.build())})
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return _model(tmp_path_factory.mktemp("model") / "g.safetensors", 4)


def _images(folder, n, side):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        arr = np.random.default_rng(i).integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{i}.png")
    return folder


def test_the_estimate_grows_with_the_model_and_the_pixels(model, tmp_path):
    small = bytes_per_pixel(Translator.load(model, device="cpu"))
    wide = bytes_per_pixel(Translator.load(_model(tmp_path / "w.safetensors", 16), device="cpu"))
    assert 2 < wide / small < 4  # activations scale with the channels, edges stay
    budget = MemoryBudget.for_translator(Translator.load(model, device="cpu"), 10**6)
    assert budget.needs(200, 200) == pytest.approx(4 * budget.needs(100, 100))


def test_an_image_over_max_pixels_fails_naming_tile_and_tiles_get_through(model, tmp_path):
    src = _images(tmp_path / "in", 2, 48)
    cmd = ["convert", str(model), str(src), "--device", "cpu", "--no-progress"]
    cmd += ["--max-pixels", str(48 * 48 - 1)]
    refused = CliRunner().invoke(main, [*cmd, str(tmp_path / "a")])
    assert refused.exit_code == 1 and "failed 2" in refused.output
    assert refused.output.count("48x48 needs about") == 2
    assert refused.output.count("over --max-pixels 2,303") == 2
    assert "translate it in tiles with --tile" in refused.output
    assert isinstance(refused.exception, SystemExit)  # the summary's exit 1, no traceback
    assert not list((tmp_path / "a").glob("*.png"))

    tiled = CliRunner().invoke(main, [*cmd, str(tmp_path / "b"), "--tile", "16", "--overlap", "4"])
    assert tiled.exit_code == 0, tiled.output
    assert sorted(p.name for p in (tmp_path / "b").glob("*.png")) == ["0.png", "1.png"]


@pytest.mark.parametrize(("threads", "parts"), [(1, [2, 2]), (2, [1, 1, 1, 1])])
def test_same_size_images_share_a_pass_only_as_far_as_they_fit(
    model, tmp_path, monkeypatch, threads, parts
):
    """Two images fit the budget: one thread gives them one pass; two threads translate
    one image each side by side, never more than two at once."""
    src = _images(tmp_path / "in", 4, 32)
    full = convert_folder(
        src, tmp_path / "full", Translator.load(model, device="cpu", batch_size=4), progress=False
    )
    passes, held, most = [], [0], [0]
    lock = threading.Lock()
    real = Translator.translate_batch

    def counted(self, images, names=None):
        with lock:
            passes.append(len(images))
            held[0] += len(images)
            most[0] = max(most[0], held[0])
        time.sleep(0.05)  # long enough for a second thread's pass to overlap
        try:
            return real(self, images, names)
        finally:
            with lock:
                held[0] -= len(images)

    monkeypatch.setattr(Translator, "translate_batch", counted)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        summary = convert_folder(
            src,
            tmp_path / "out",
            Translator.load(model, device="cpu", batch_size=4),
            progress=False,
            max_pixels=2 * 32 * 32 + 100,
        )
        # The translating threads' one thread each is theirs: a thread started later has all.
        with ThreadPoolExecutor(1) as later:
            assert later.submit(torch.get_num_threads).result() == threads
    finally:
        torch.set_num_threads(before)
    assert full.converted == summary.converted == 4 and passes == parts and most[0] == 2
    for i in range(4):
        a = np.asarray(Image.open(tmp_path / "full" / f"{i}.png"))
        assert np.array_equal(a, np.asarray(Image.open(tmp_path / "out" / f"{i}.png")))


def test_the_default_limit_comes_from_the_free_memory(model, tmp_path, monkeypatch):
    big = tmp_path / "in" / "big.png"
    big.parent.mkdir()
    Image.new("RGB", (3000, 3000)).save(big)  # a few KB on disk, 9 M pixels to translate
    monkeypatch.setattr(memory, "free_memory", lambda device: 1 << 30)
    summary = convert_folder(
        big.parent, tmp_path / "out", Translator.load(model, device="cpu"), progress=False
    )
    [(path, reason)] = summary.failed
    assert path == big and "3000x3000 needs about" in reason and "--tile" in reason
    # Tiles written as PNG rows hold one band of buffers: a tile is offered. A JPEG keeps the
    # finished image whole (24 bytes a pixel: 216 MB here): with less room, no tile is.
    monkeypatch.setattr(memory, "free_memory", lambda device: 256 << 20)
    translator = Translator.load(model, device="cpu")
    summary = convert_folder(big.parent, tmp_path / "out", translator, progress=False)
    [(path, reason)] = summary.failed
    assert "translate it in tiles with --tile" in reason
    summary = convert_folder(big, tmp_path / "big.jpg", translator, progress=False)
    [(path, reason)] = summary.failed
    assert "even 16-pixel tiles do not fit beside the finished image" in reason


def test_the_tile_a_refusal_names_is_accepted_for_that_image(model, tmp_path, any_cpu):
    """Whatever `auto` picks on this CPU (its bytes per pixel differ), the --tile a refusal
    suggests converts the image, and so does a smaller one."""
    src = _images(tmp_path / "in", 1, 200)
    per_pixel = bytes_per_pixel(Translator.load(model, device="cpu"))
    room = per_pixel * 130 * 130 + 200 * 200 * memory.TILED_BYTES_PER_PIXEL
    cmd = ["convert", str(model), str(src), "--device", "cpu", "--no-progress"]
    cmd += ["--max-pixels", str(int(room / per_pixel))]
    refused = CliRunner().invoke(main, [*cmd, str(tmp_path / "a")])
    assert refused.exit_code == 1, refused.output
    side = int(re.search(r"--tile (\d+) ", refused.output)[1])
    assert side == 128  # the largest multiple of 64 whose pass fits beside the buffers
    for tile in (side, side // 2):
        out = tmp_path / f"tiled{tile}"
        tiled = CliRunner().invoke(main, [*cmd, str(out), "--tile", str(tile)])
        assert tiled.exit_code == 0, tiled.output
        assert (out / "0.png").is_file()


def _tree(root, files):
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / "proc", root


def test_the_container_limit_is_read_from_the_process_cgroup_v2_and_v1(tmp_path):
    """A fake /proc/self and cgroup tree: the tightest limit above the process counts."""
    v2 = _tree(tmp_path / "v2", {
        "proc/cgroup": "0::/user.slice/app.scope\n",
        "proc/mountinfo": "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw\n",
        "sys/fs/cgroup/user.slice/app.scope/memory.max": "max\n",
        "sys/fs/cgroup/user.slice/app.scope/memory.current": "100\n",
        "sys/fs/cgroup/user.slice/memory.max": "3000\n",  # the container's, a parent's
        "sys/fs/cgroup/user.slice/memory.current": "1000\n",
    })  # fmt: skip
    assert runtime._cgroup_free(*v2) == 2000
    # v1 (a docker bind mount: the hierarchy's /docker is mounted at the memory controller).
    v1 = _tree(tmp_path / "v1", {
        "proc/cgroup": "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n",
        "proc/mountinfo": (
            "32 31 0:29 /docker /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
            "35 31 0:32 /docker /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n"
        ),
        "sys/fs/cgroup/memory/abc/memory.limit_in_bytes": str(3_570_000_000),
        "sys/fs/cgroup/memory/abc/memory.usage_in_bytes": str(570_000_000),
        "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712",  # no limit
        "sys/fs/cgroup/memory/memory.usage_in_bytes": str(5 << 30),
        "sys/fs/cgroup/cpu,cpuacct/abc/memory.limit_in_bytes": "1",  # not the memory's
    })  # fmt: skip
    assert runtime._cgroup_free(*v1) == 3_000_000_000
    # No limit anywhere, or no cgroup at all: the machine's memory decides.
    (tmp_path / "v2/sys/fs/cgroup/user.slice/memory.max").write_text("max\n")
    assert runtime._cgroup_free(*v2) is None
    assert runtime._cgroup_free(tmp_path / "none", tmp_path / "none") is None


def _upscaler(tile):
    torch.manual_seed(0)
    spec = GeneratorSpec.declared("toy_upscale2_conftest", 3, 3, {})
    model = LoadedModel({"AtoB": spec.build().eval()}, {"AtoB": spec})
    return Translator(model, device="cpu", tile=tile, overlap=6)


class _Bar(tqdm):
    """tqdm recording each step it is moved by."""

    steps: list[float] = []

    def update(self, n=1):
        _Bar.steps.append(n)
        return super().update(n)


def test_a_tiled_image_is_written_band_by_band_as_in_memory(tmp_path, monkeypatch):
    """With --tile a PNG's rows reach the file as each row of tiles finishes (several
    writes), and a JPEG's gather in a canvas; both are the in-memory tiled translation,
    and the bar moves once per tile."""
    src = tmp_path / "in.png"
    image = np.random.default_rng(3).integers(0, 256, (70, 45, 3), dtype=np.uint8)
    Image.fromarray(image).save(src)
    translator = _upscaler(tile=24)
    expected = translator.translate_batch([image])[0]
    writes = []
    real_rows = convert.png_rows

    def counting_rows(*args, **kwargs):
        with real_rows(*args, **kwargs) as write:
            yield lambda rows: writes.append(len(rows)) or write(rows)

    monkeypatch.setattr(convert, "png_rows", contextlib.contextmanager(counting_rows))
    monkeypatch.setattr(convert, "tqdm", _Bar)
    _Bar.steps = []
    summary = convert_folder(src, tmp_path / "out.png", translator, progress=True)
    assert summary.converted == 1 and not summary.failed
    assert writes == [36, 36, 20, 48]  # output rows finished by each row of tiles
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), expected)
    assert _Bar.steps[:12] == pytest.approx([1 / 12] * 12)  # 4 x 3 tiles, then the rest
    assert sum(_Bar.steps) == pytest.approx(1)
    jpg = convert_folder(src, tmp_path / "out.jpg", translator, progress=False, quality=100)
    whole = tmp_path / "whole.jpg"
    write_image(whole, expected, quality=100)
    assert jpg.converted == 1 and (tmp_path / "out.jpg").read_bytes() == whole.read_bytes()


def test_the_band_path_counts_one_band_of_buffers_not_the_image():
    """Rows handed on as they finish: what a tiled image needs grows with its width only
    (PNG), plus the finished image for a format written whole, never the float buffers of
    the whole image; so the issue's 20 MP photo at 4x fits in tiles of 512."""
    translator = _upscaler(tile=128)
    translator.spec = replace(translator.spec, scale=4)
    budget = MemoryBudget(translator, bytes_per_pixel=2000.0, max_pixels=200_000)
    band = budget.needs(1000, 1500, band=True)
    assert band == budget.needs(4000, 1500, band=True)  # taller: the same band
    assert band == 128 * 128 * 2000.0 + 128 * 1500 * 16 * memory.TILED_BYTES_PER_PIXEL
    canvas = 1000 * 1500 * 16 * memory.CANVAS_BYTES_PER_PIXEL
    assert budget.needs(1000, 1500, band=True, canvas=True) == band + canvas
    assert budget.needs(1000, 1500) == 128 * 128 * 2000.0 + 1000 * 1500 * 16 * 48
    assert budget.refuse(1000, 1500, band=True) is None
    assert "even 16-pixel tiles do not fit" in budget.refuse(1000, 1500)
    # The photo at 4x: about 15 GiB of whole-image buffers, one 2048-row band here.
    translator.tile = 512
    big = MemoryBudget(translator, bytes_per_pixel=2000.0, max_pixels=2_200_000)
    assert "even 16-pixel tiles do not fit" in big.refuse(3391, 6028)
    assert big.refuse(3391, 6028, band=True) is None


def test_the_summary_names_no_output_it_did_not_write(model, tmp_path):
    src = _images(tmp_path / "in", 1, 48)
    out = tmp_path / "out.png"
    cmd = ["convert", str(model), str(src / "0.png"), str(out), "--no-progress"]
    refused = CliRunner().invoke(main, [*cmd, "--max-pixels", "100"])
    assert refused.exit_code == 1 and "failed 1" in refused.output
    assert "outputs in" not in refused.output and not out.exists()
    done = CliRunner().invoke(main, cmd)
    assert done.exit_code == 0 and f"outputs in {out}" in done.output


def test_a_header_too_large_is_refused_before_decoding(model, tmp_path, monkeypatch):
    """The size a PNG's header declares is checked against the budget before its pixels
    are decoded (a few KB on disk can be gigabytes decoded)."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.new("RGB", (3000, 3000)).save(src / f"{i}.png")

    def never(*args, **kwargs):
        raise AssertionError("decoded")

    monkeypatch.setattr(convert, "read_image_with_info", never)
    translator = Translator.load(model, device="cpu")
    summary = convert_folder(src, tmp_path / "out", translator, progress=False, max_pixels=10_000)
    assert [p.name for p, _ in summary.failed] == ["0.png", "1.png", "2.png"]
    assert all("3000x3000 needs about" in reason for _, reason in summary.failed)


def test_read_ahead_is_bounded_by_bytes_as_well_as_by_count():
    """Decoding ahead stops where the images in flight would pass the byte limit (one is
    always allowed), whatever the count allows."""
    in_flight, peak = set(), []

    def work(i):
        return i

    with ThreadPoolExecutor(2) as pool:
        results = []
        sizes = [50, 50, 50, 200, 10, 10]

        def weigh(i):
            in_flight.add(i)
            peak.append(sum(sizes[j] for j in in_flight))
            return sizes[i]

        for i in convert._ordered_map(pool, work, range(6), ahead=8, weigh=weigh, limit=120):
            in_flight.discard(i)
            results.append(i)
    assert results == list(range(6))
    # 50+50 fit under 120; the third waits; 200 goes alone (peak counts the item weighed)
    assert max(peak) <= 120 + 200 and peak[:3] == [50, 100, 150]
