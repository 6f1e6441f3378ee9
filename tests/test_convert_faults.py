"""Hard failures during conversion: full disks, stale temporary files, long names, symlink
loops and files that are not files. Nothing lost, nothing hangs."""

import errno
import fcntl
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from translate.conversion.convert import IMAGES, convert_folder
from translate.conversion.manifest import MANIFEST_NAME
from translate.conversion.runner import plan
from translate.core.atomic import atomic_write_bytes, remove_stale_temps
from translate.data.images import ImageReadError, is_image_path, read_image, scan_files
from translate.inference.options import ConvertOptions
from translate.inference.translator import Translator
from translate.models.model_file import GeneratorSpec, load_generators, save_generators
from translate.training.checkpoint import save_state


@pytest.fixture(scope="module")
def model(tiny_generator_file):
    return tiny_generator_file


def _noise(path, shape, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def inputs(tmp_path):
    src = tmp_path / "in"
    for i in range(8):
        _noise(src / f"{i}.png", (96, 96, 3), i)
    return src


def _convert(src, dst, model, **kwargs):
    kwargs.setdefault("format", "jpg")
    # Batches of 4: a rerun batches only what failed, and must still match byte for byte.
    translator = Translator.load(model, device="cpu", batch_size=4)
    return convert_folder(src, dst, translator, progress=False, quality=100, **kwargs)


def _all_files(root):
    """Every file below root but the conversion manifest, temporary files included."""
    files = (p for p in Path(root).rglob("*") if p.is_file() and p.name != MANIFEST_NAME)
    return sorted(p.relative_to(root).as_posix() for p in files)


def _assert_outputs_match(dst, reference):
    """Every file in dst is byte-identical to the reference conversion's; no temp files."""
    for name in _all_files(dst):
        assert (reference / name).exists(), f"unexpected file {name} (a temporary file?)"
        assert (dst / name).read_bytes() == (reference / name).read_bytes(), f"{name} is corrupt"


@pytest.fixture
def reference(model, inputs, tmp_path):
    dst = tmp_path / "reference"
    assert _convert(inputs, dst, model).converted == 8
    return dst


@pytest.fixture
def small_tmpfs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40k", "tmpfs", str(mnt)])
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_full_disk_fails_those_files_and_a_rerun_after_freeing_space_completes(
    model, inputs, reference, small_tmpfs
):
    dst = small_tmpfs / "out"
    first = _convert(inputs, dst, model)
    assert first.converted >= 1 and len(first.failed) >= 1
    assert first.converted + len(first.failed) == 8
    assert all("No space left" in reason for _, reason in first.failed)
    _assert_outputs_match(dst, reference)  # whatever is there is whole

    subprocess.run(["mount", "-o", "remount,size=4m", str(small_tmpfs)], check=True)
    second = _convert(inputs, dst, model)
    assert (second.converted, second.skipped, second.failed) == (
        len(first.failed),
        first.converted,
        [],
    )
    _assert_outputs_match(dst, reference)
    assert len(_all_files(dst)) == 8


class _FillingDisk:
    """os.write for our temporary files as a disk with ``free`` bytes left sees it: a short
    write when the space runs out, then ENOSPC."""

    def __init__(self, free):
        self.free = free
        self.real = os.write

    def __call__(self, fd, data):
        if not os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".tr-"):
            return self.real(fd, data)
        if self.free == 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = self.real(fd, bytes(memoryview(data)[: self.free]))
        self.free -= n
        return n


def test_enospc_halfway_through_a_write_is_a_failure_not_a_success(
    model, inputs, reference, tmp_path, monkeypatch
):
    dst = tmp_path / "out"
    half_of_all = sum(p.stat().st_size for p in reference.iterdir()) // 2
    monkeypatch.setattr(os, "write", _FillingDisk(half_of_all))
    first = _convert(inputs, dst, model, workers=1)
    monkeypatch.undo()
    assert first.converted >= 1 and len(first.failed) >= 1
    assert first.converted + len(first.failed) == 8
    _assert_outputs_match(dst, reference)

    second = _convert(inputs, dst, model)
    assert (second.converted, second.failed) == (len(first.failed), [])
    _assert_outputs_match(dst, reference)
    assert len(_all_files(dst)) == 8


def test_short_writes_are_completed(tmp_path, monkeypatch):
    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real(fd, bytes(memoryview(data)[:3])))
    atomic_write_bytes(tmp_path / "f.bin", b"0123456789")
    monkeypatch.undo()
    assert (tmp_path / "f.bin").read_bytes() == b"0123456789"


def test_checkpoints_and_generator_files_on_a_full_disk_raise_and_keep_the_old_file(
    model, tmp_path, monkeypatch
):
    run = tmp_path / "run"
    save_state(run, 1, {"w": torch.ones(1000)}, keep=3)
    gen = tmp_path / "g.safetensors"
    gen.write_bytes(model.read_bytes())
    monkeypatch.setattr(os, "write", _FillingDisk(2000))
    with pytest.raises(OSError, match="No space"):
        save_state(run, 2, {"w": torch.ones(1000)}, keep=3)
    with pytest.raises(OSError, match="No space"):
        spec = GeneratorSpec("resnet_6blocks", 3, 3, {"ngf": 4, "n_blocks": 1})
        save_generators(gen, {"AtoB": (spec, spec.build())})
    monkeypatch.undo()
    assert _all_files(run) == ["checkpoints/state_1.pt"]
    assert torch.load(run / "checkpoints" / "state_1.pt")["w"].sum() == 1000
    assert gen.read_bytes() == model.read_bytes()
    assert load_generators(gen).specs["AtoB"].name == "resnet_6blocks"


def test_stale_temp_files_of_a_killed_run_are_removed_live_and_foreign_ones_kept(
    model, inputs, tmp_path
):
    dst = tmp_path / "out"
    stale = [
        dst / ".tr-abcd1234.tmp.jpg",
        dst / ".0.k3j4h5g6.tmp.jpg",  # the longer names of earlier versions
    ]
    foreign = [dst / ".notes.tmp", dst / "x.tmp.jpg"]
    live = dst / ".tr-live0000.tmp.jpg"
    for path in [*stale, *foreign, live]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another process still writing it
        summary = _convert(inputs, dst, model)
        assert summary.converted == 8
        assert not any(p.exists() for p in stale)
        assert all(p.exists() for p in [*foreign, live])

    run = tmp_path / "run"
    leftovers = [
        run / "checkpoints" / ".tr-zzzz9999.tmp.pt",
        run / "checkpoints" / ".state_10.a_b9c8d7.tmp.pt",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    save_state(run, 20, {"w": torch.ones(2)}, keep=3)
    assert _all_files(run) == ["checkpoints/state_20.pt"]
    assert remove_stale_temps(tmp_path / "missing") == []


def test_output_names_near_the_filesystem_limit_are_written(model, tmp_path):
    src = tmp_path / "in"
    name = "n" * 246 + ".png"  # 250 bytes: the target fits, a long temporary name would not
    _noise(src / name, (16, 16, 3), 0)
    summary = _convert(src, tmp_path / "out", model, format="same")
    assert (summary.converted, summary.failed) == (1, [])
    assert _all_files(tmp_path / "out") == [name]


def test_a_symlink_loop_fails_that_file_and_the_rest_goes_on(model, tmp_path):
    src = tmp_path / "in"
    _noise(src / "c.png", (16, 16, 3), 0)
    os.symlink("b.png", src / "a.png")
    os.symlink("a.png", src / "b.png")
    summary = _convert(src, tmp_path / "out", model)
    assert summary.converted == 1
    assert sorted((p.name, r) for p, r in summary.failed) == [
        ("a.png", "a symbolic link loop"),
        ("b.png", "a symbolic link loop"),
    ]
    with pytest.raises(ImageReadError, match="a.png: cannot open \\(a symbolic link loop\\)"):
        read_image(src / "a.png")


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "translate.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,  # a hang fails the test instead of blocking the suite
    )


def test_a_named_pipe_is_left_alone_and_reported_by_convert_and_data_check(model, tmp_path):
    src = tmp_path / "in"
    _noise(src / "a.png", (16, 16, 3), 0)
    os.mkfifo(src / "pipe.png")
    scan = scan_files(src, is_image_path)
    assert [p.name for p in scan.files] == ["a.png"]
    assert [(p.name, k) for p, k in scan.not_files] == [("pipe.png", "a named pipe")]
    with pytest.raises(ImageReadError, match="not a regular file \\(a named pipe\\)"):
        read_image(src / "pipe.png")

    done = _cli("convert", model, src, tmp_path / "out", "--no-progress", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert "converted 1" in done.stdout and "1 not regular files left alone" in done.stdout
    assert "pipe.png: a named pipe" in done.stderr
    assert "Traceback" not in done.stderr

    checked = _cli("data", "check", src)
    assert "pipe.png: a named pipe" in checked.stderr
    assert "Traceback" not in checked.stderr


def test_a_glob_cannot_leave_input_nor_any_selection_write_outside_output(model, tmp_path):
    src, sib = tmp_path / "in", tmp_path / "sib"
    _noise(src / "a.png", (16, 16, 3), 0)
    _noise(sib / "a.png", (16, 16, 3), 1)
    dst = tmp_path / "deep" / "out"
    done = _cli("convert", model, src, dst, "--glob", "../sib/*.png", "--device", "cpu")
    assert done.returncode == 1
    assert "--glob ../sib/*.png: give a pattern relative to INPUT" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "deep").exists()

    # The planner itself refuses, whatever the selection: a listed '..' path, or an output
    # folder whose subfolder is a link to elsewhere.
    with pytest.raises(ValueError, match="would be outside OUTPUT"):
        plan(src, dst, ConvertOptions(), (IMAGES,), [src / ".." / "sib" / "a.png"])
    _noise(src / "sub" / "b.png", (16, 16, 3), 2)
    dst.mkdir(parents=True)
    os.symlink(sib, dst / "sub")
    with pytest.raises(ValueError, match="sub/b.png would be outside OUTPUT"):
        plan(src, dst, ConvertOptions(), (IMAGES,))


def test_a_file_name_that_is_not_utf8_is_printed_as_its_bytes(model, tmp_path):
    """Python holds such a name with surrogate escapes; what is printed shows the real
    bytes (``\\xe9``), in the summary and in a one-line error alike."""
    from click.testing import CliRunner

    from translate.cli import main

    src = tmp_path / "in"
    src.mkdir()
    bad = src / os.fsdecode(b"bad_latin1_\xe9\xfe.png")
    bad.write_bytes(b"not a png")
    _noise(src / "good.png", (8, 8, 3), 0)
    result = CliRunner().invoke(main, ["convert", str(model), str(src), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "bad_latin1_\\xe9\\xfe.png: not a readable image" in result.output
    assert "\\udce9" not in result.output
    inside = src / os.fsdecode(b"o\xe9")  # refused in one line naming it
    refused = CliRunner().invoke(main, ["convert", str(model), str(src), str(inside)])
    assert refused.exit_code == 1 and "in/o\\xe9: the output folder is inside" in refused.output
