"""Images too large for the memory: estimated before translating, refused with a reason
naming --tile, or translated in smaller batches; never left to the OS to kill."""

import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from translate import runtime
from translate.cli import main
from translate.inference import memory
from translate.inference.convert import convert_folder
from translate.inference.memory import MemoryBudget, bytes_per_pixel
from translate.inference.translator import Translator
from translate.model_file import GeneratorSpec, save_generators


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


def test_same_size_images_share_a_pass_only_as_far_as_they_fit(model, tmp_path, monkeypatch):
    src = _images(tmp_path / "in", 4, 32)
    full = convert_folder(
        src, tmp_path / "full", Translator.load(model, device="cpu", batch_size=4), progress=False
    )
    passes = []
    real = Translator.translate_batch
    monkeypatch.setattr(
        Translator,
        "translate_batch",
        lambda self, images: passes.append(len(images)) or real(self, images),
    )
    summary = convert_folder(
        src,
        tmp_path / "out",
        Translator.load(model, device="cpu", batch_size=4),
        progress=False,
        max_pixels=2 * 32 * 32 + 100,
    )
    assert full.converted == summary.converted == 4 and passes == [2, 2]
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
    # Tiling keeps whole-image buffers (48 bytes a pixel: 432 MB here): with less room than
    # that no tile is offered.
    monkeypatch.setattr(memory, "free_memory", lambda device: 256 << 20)
    summary = convert_folder(
        big.parent, tmp_path / "out", Translator.load(model, device="cpu"), progress=False
    )
    [(path, reason)] = summary.failed
    assert "even 16-pixel tiles do not fit" in reason and "--tile " not in reason


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
