import os
import threading

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from translate.cli import main
from translate.conversion.convert import convert_folder, shard
from translate.conversion.manifest import MANIFEST_NAME
from translate.data.images import read_image
from translate.inference.translator import Translator
from translate.models.model_file import GeneratorSpec, LoadedModel, save_generators


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "g.safetensors"
    spec = GeneratorSpec("resnet_6blocks", 3, 3, {"ngf": 4, "n_blocks": 1})
    save_generators(path, {"AtoB": (spec, spec.build())})
    return path


def _save(path, shape, seed=0, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(arr).save(path, **kwargs)
    return path


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "in"
    _save(src / "a.png", (20, 24, 3), 1)
    _save(src / "b.png", (20, 24, 3), 2)
    _save(src / "nested" / "deep" / "c.jpg", (17, 31, 3), 3)
    _save(src / "nested" / "d.png", (20, 24), 4)
    return src


def _outputs(root):
    files = (p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)
    return sorted(str(p.relative_to(root)) for p in files)


def test_folder_is_mirrored_and_each_output_is_the_translation(model, folder, tmp_path):
    dst = tmp_path / "out"
    summary = convert_folder(
        folder, dst, Translator.load(model, device="cpu", batch_size=2), progress=False
    )
    assert (summary.converted, summary.skipped, summary.failed) == (4, 0, [])
    assert _outputs(dst) == ["a.png", "b.png", "nested/d.png", "nested/deep/c.jpg"]
    translator = Translator.load(model, device="cpu")
    expected = translator(Image.open(folder / "nested" / "d.png"))  # gray in, gray out
    with Image.open(dst / "nested" / "d.png") as out:
        assert out.mode == "L" and np.array_equal(np.asarray(out), np.asarray(expected))
    assert Image.open(dst / "nested" / "deep" / "c.jpg").size == (31, 17)


def test_a_single_file_goes_into_the_output_folder(model, folder, tmp_path):
    summary = convert_folder(folder / "a.png", tmp_path / "one", model, progress=False)
    assert summary.converted == 1 and _outputs(tmp_path / "one") == ["a.png"]


def test_a_single_file_to_an_image_name_writes_that_file(model, folder, tmp_path):
    """``convert MODEL a.png out.png`` writes the file out.png, not a folder of that name; no
    manifest beside it (its folder is not the conversion's), skipped when it exists. fp32
    pinned on both sides: auto is bf16 on a CPU with native bf16."""
    out = tmp_path / "sub" / "out.png"
    args = ["convert", str(model), str(folder / "a.png"), str(out), "--precision", "fp32"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and out.is_file(), result.output
    assert sorted(os.listdir(out.parent)) == ["out.png"]
    expected = Translator.load(model, device="cpu", precision="fp32")(read_image(folder / "a.png"))
    assert np.array_equal(read_image(out), expected)
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "converted 0, skipped 1" in again.output
    redone = CliRunner().invoke(main, [*args, "--overwrite", "--format", "png"])
    assert redone.exit_code == 0 and "converted 1, skipped 0" in redone.output
    wrong = CliRunner().invoke(main, [*args, "--format", "jpeg"])
    assert wrong.exit_code == 1 and wrong.output == (
        f"Error: {out}: --format jpg, but the output's name says .png; name it .jpg or leave "
        "--format out\n"
    )
    report = CliRunner().invoke(main, [*args, "--report"])
    assert report.exit_code == 2 and "--report writes OUTPUT/index.html" in report.output


def test_corrupt_file_in_the_middle_is_reported_and_the_rest_converted(model, folder, tmp_path):
    (folder / "b2.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    dst = tmp_path / "out"
    summary = convert_folder(folder, dst, Translator.load(model, device="cpu"), progress=False)
    assert summary.converted == 4
    assert [p.name for p, _ in summary.failed] == ["b2.png"]
    assert "not a readable image" in summary.failed[0][1]
    assert not (dst / "b2.png").exists()

    result = CliRunner().invoke(main, ["convert", str(model), str(folder), str(dst), "--overwrite"])
    assert result.exit_code == 1
    assert "converted 4" in result.output and "failed 1" in result.output
    assert "b2.png" in result.output


def test_a_file_of_no_image_format_is_named_by_its_path_not_a_file_handle(model, folder):
    (folder / "notes.png").write_text("a text file with an image's name")
    result = CliRunner().invoke(
        main, ["convert", str(model), str(folder), str(folder.parent / "o")]
    )
    failed = [line for line in result.stderr.splitlines() if "notes.png" in line]
    assert result.exit_code == 1 and len(failed) == 1, result.output
    assert failed[0] == (
        f"  failed: {folder / 'notes.png'}: not a readable image (no image format PIL knows: "
        "damaged, or not an image; re-save it as PNG or JPEG, or move it out of the way)"
    )


def test_interrupted_run_leaves_no_partial_files_and_resumes(model, folder, tmp_path, monkeypatch):
    dst = tmp_path / "out"
    real_translate = Translator.translate_batch
    calls = []

    def translate_then_interrupt(self, images, names=None):
        calls.append(len(images))
        if len(calls) == 3:  # Ctrl-C while the model runs on the third image
            raise KeyboardInterrupt
        return real_translate(self, images, names)

    monkeypatch.setattr(Translator, "translate_batch", translate_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        convert_folder(
            folder, dst, Translator.load(model, device="cpu", batch_size=1), progress=False
        )
    monkeypatch.undo()
    done = _outputs(dst)
    assert len(done) == 2  # no temporary or half-written file beside them

    summary = convert_folder(folder, dst, Translator.load(model, device="cpu"), progress=False)
    assert (summary.converted, summary.skipped) == (2, 2)
    assert len(_outputs(dst)) == 4

    (dst / "a.png").write_bytes(b"stale")
    again = convert_folder(
        folder, dst, Translator.load(model, device="cpu"), overwrite=True, progress=False
    )
    assert (again.converted, again.skipped) == (4, 0)
    assert read_image(dst / "a.png").shape == (20, 24, 3)


def test_refuses_to_write_into_the_input_or_over_an_input(model, folder):
    with pytest.raises(ValueError, match="inside the input folder"):
        convert_folder(folder, folder / "out", model, progress=False)
    with pytest.raises(ValueError, match="inside the input folder"):
        convert_folder(folder, folder, model, progress=False)
    with pytest.raises(ValueError, match="over an input file"):
        convert_folder(folder / "a.png", folder, model, progress=False)
    (folder.parent / "notes.txt").write_text("not an image's name")
    with pytest.raises(ValueError, match="must be a folder"):
        convert_folder(folder / "a.png", folder.parent / "notes.txt", model, progress=False)
    result = CliRunner().invoke(main, ["convert", str(model), str(folder), str(folder / "x")])
    assert result.exit_code == 1 and "inside the input folder" in result.output


def test_format_quality_and_alpha(model, tmp_path):
    src = tmp_path / "in"
    rgba = np.random.default_rng(0).integers(0, 256, (24, 24, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(_save(src / "x.png", (1, 1)))
    as_png = convert_folder(src, tmp_path / "png", model, format="png", progress=False)
    assert as_png.converted == 1
    with Image.open(tmp_path / "png" / "x.png") as out:
        assert out.mode == "RGBA"
        assert np.array_equal(np.asarray(out)[..., 3], rgba[..., 3])
    for q in (20, 95):
        convert_folder(src, tmp_path / f"q{q}", model, format="jpg", quality=q, progress=False)
        with Image.open(tmp_path / f"q{q}" / "x.jpg") as out:
            assert out.format == "JPEG" and out.mode == "RGB"  # alpha dropped
    assert (tmp_path / "q20" / "x.jpg").stat().st_size < (tmp_path / "q95" / "x.jpg").stat().st_size


def test_gray_files_come_out_gray_as_from_the_translator(model, tmp_path):
    src = tmp_path / "in"
    gray = _save(src / "g.png", (16, 20), 5)
    la = np.random.default_rng(6).integers(0, 256, (16, 20, 2), dtype=np.uint8)
    Image.fromarray(la, "LA").save(src / "la.png")
    translator = Translator.load(model, device="cpu")
    convert_folder(src, tmp_path / "png", translator, progress=False)
    with Image.open(tmp_path / "png" / "g.png") as out, Image.open(gray) as image:
        assert out.mode == translator(image).mode == "L"
        assert np.array_equal(np.asarray(out), np.asarray(translator(image)))
    with Image.open(tmp_path / "png" / "la.png") as out:
        assert out.mode == "LA" and np.array_equal(np.asarray(out)[..., 1], la[..., 1])
    jpg = convert_folder(src, tmp_path / "jpg", translator, format="jpg", progress=False)
    assert jpg.converted == 2 and not jpg.failed  # JPEG has no alpha: LA becomes L
    with Image.open(tmp_path / "jpg" / "la.jpg") as out:
        assert out.mode == "L"


def test_outputs_that_would_collide_are_reported(model, tmp_path):
    src = tmp_path / "in"
    _save(src / "x.png", (16, 16, 3))
    _save(src / "x.jpg", (16, 16, 3))
    summary = convert_folder(src, tmp_path / "out", model, format="webp", progress=False)
    assert summary.converted == 1
    assert [p.name for p, _ in summary.failed] == ["x.png"]
    assert "same output" in summary.failed[0][1]


def test_symlink_loop_does_not_hang(model, folder, tmp_path):
    os.symlink(folder, folder / "nested" / "loop")
    summary = convert_folder(folder, tmp_path / "out", model, progress=False)
    assert summary.converted >= 4 and not summary.failed


def test_shards_cover_every_file_once(model, folder, tmp_path, monkeypatch):
    items = list(range(11))
    shares = [shard(items, rank, 3) for rank in range(3)]
    assert sorted(sum(shares, [])) == items
    assert all(len(s) in (3, 4) for s in shares)

    converted = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        summary = convert_folder(folder, tmp_path / "out", model, progress=False)
        converted.append(summary.converted)
        assert summary.skipped == 0  # the other rank's outputs are not even looked at
    assert converted == [2, 2] and len(_outputs(tmp_path / "out")) == 4


def test_cli_convert_prints_the_summary(model, folder, tmp_path):
    dst = tmp_path / "out"
    args = ["convert", str(model), str(folder), str(dst), "--device", "cpu", "--batch-size", "3"]
    result = CliRunner().invoke(main, [*args, "--format", "png", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "converted 4, skipped 0" in result.output and str(dst) in result.output
    assert "nested/deep/c.png" in _outputs(dst)
    rerun = CliRunner().invoke(main, [*args, "--format", "png", "--no-progress"])
    assert rerun.exit_code == 0 and "skipped 4" in rerun.output
    bad = CliRunner().invoke(main, [*args, "--precision", "fp16"])
    assert bad.exit_code == 1 and "fp16 needs a CUDA" in bad.output
    missing = CliRunner().invoke(main, ["convert", str(tmp_path / "no.safetensors"), *args[2:]])
    assert missing.exit_code == 1 and "no.safetensors" in missing.output
    arch = CliRunner().invoke(main, [*args, "--arch", "resnet_9blocks"])  # reaches load_model
    assert arch.exit_code == 1 and "--arch/--norm only apply" in arch.output


def test_16_bit_files_stay_16_bit_and_palette_files_are_read_as_in_training(model, tmp_path):
    """16-bit gray and RGB PNG and TIFF come out 16-bit (the translation of their uint16
    values); a format of 8 bits gets 8; a palette file is read as training reads it."""
    import cv2

    src = tmp_path / "in"
    src.mkdir()
    ramp = (np.arange(16 * 20, dtype=np.uint16).reshape(16, 20) * 200).astype(np.uint16)
    Image.fromarray(ramp).save(src / "deep.png")  # 16-bit grayscale
    deep_rgb = np.random.default_rng(1).integers(0, 65536, (16, 20, 3), np.uint16)
    for name in ("rgb16.png", "rgb16.tif"):
        cv2.imwrite(str(src / name), deep_rgb[..., ::-1])  # OpenCV writes BGR
    rgb = np.random.default_rng(0).integers(0, 256, (16, 20, 3), np.uint8)
    Image.fromarray(rgb).convert("P").save(src / "palette.png")
    summary = convert_folder(
        src, tmp_path / "out", Translator.load(model, device="cpu"), progress=False
    )
    assert summary.converted == 4 and not summary.failed
    translator = Translator.load(model, device="cpu")
    with Image.open(tmp_path / "out" / "deep.png") as out:
        assert out.mode in ("I;16", "I")
        assert np.array_equal(np.asarray(out), translator(ramp))
    for name in ("rgb16.png", "rgb16.tif"):
        out = cv2.imread(str(tmp_path / "out" / name), cv2.IMREAD_UNCHANGED)[..., ::-1]
        assert out.dtype == np.uint16 and np.array_equal(out, translator(deep_rgb))
    expected = translator(read_image(src / "palette.png", channels=None))
    assert np.array_equal(read_image(tmp_path / "out" / "palette.png", channels=None), expected)
    jpg = convert_folder(src / "deep.png", tmp_path / "deep.jpg", model, progress=False)
    assert jpg.converted == 1 and Image.open(tmp_path / "deep.jpg").mode == "L"


def test_cli_converts_with_a_reference_checkpoint(folder, tmp_path, any_cpu):
    # Our ResNet has the reference's state-dict layout; DataParallel's prefix is stripped.
    # Both sides resolve `auto` on the CPU pretended: bf16 where native, else fp32.
    spec = GeneratorSpec("resnet_6blocks", 3, 3, {"ngf": 4, "n_blocks": 2})
    net = spec.build().eval()
    pth = tmp_path / "latest_net_G.pth"
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, pth)
    dst = tmp_path / "out"
    args = ["convert", str(pth), str(folder / "a.png"), str(dst), "--device", "cpu"]
    result = CliRunner().invoke(main, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    translator = Translator(LoadedModel({"AtoB": net}, {"AtoB": spec}), device="cpu")
    assert translator.precision.name == ("bf16" if any_cpu.native_bf16 else "fp32")
    expected = translator(read_image(folder / "a.png"))
    assert np.array_equal(read_image(dst / "a.png"), expected)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_16_bit_colour_is_turned_upright_as_pil_turns_8_bit(tmp_path, orientation):
    """16-bit colour is decoded by OpenCV, which ignores EXIF: the file's orientation is
    applied to the array as PIL's exif_transpose applies it, and the header's size is the
    upright one."""
    import io

    from PIL import ImageOps

    from translate.data import images

    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", exif=exif)
    (tmp_path / "o.png").write_bytes(buf.getvalue())
    with Image.open(tmp_path / "o.png") as img:
        upright = np.asarray(ImageOps.exif_transpose(img))
        assert np.array_equal(images._oriented(arr, img), upright)
    header = images.read_header(tmp_path / "o.png")
    assert (header.height, header.width, header.nbytes) == (*upright.shape[:2], 5 * 7 * 3)


@pytest.mark.parametrize(("changes", "where"), [({}, "translate"), ({"dropout": True}, "Main")])
def test_images_run_side_by_side_only_where_threads_may_share_the_translator(
    model, folder, tmp_path, monkeypatch, changes, where
):
    """A plain translator runs on the translating threads; with dropout (its masks seed the
    global generator) the images run one at a time on the caller's thread."""
    threads = set()
    real = Translator.translate_batch

    def recorded(self, images, names=None):
        threads.add(threading.current_thread().name.split("_")[0].removesuffix("Thread"))
        return real(self, images, names)

    monkeypatch.setattr(Translator, "translate_batch", recorded)
    translator = Translator.load(model, device="cpu", **changes)
    assert translator.reentrant == (not changes)
    summary = convert_folder(folder, tmp_path / "out", translator, progress=False)
    assert summary.converted == 4 and threads == {where}
