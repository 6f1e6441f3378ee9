"""Video conversion: tiny clips encoded by the tests themselves, translated and checked."""

import os
import re
from fractions import Fraction

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from translate.cli import main
from translate.conversion.manifest import MANIFEST_NAME, describe
from translate.conversion.video import convert_video, convert_videos, read_record
from translate.inference.options import ConvertOptions
from translate.inference.translator import Translator
from translate.models.model_file import GeneratorSpec, save_generators

av = pytest.importorskip("av")

SIDE, FRAMES, FPS, RATE = 32, 8, 8, 8000


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "g.safetensors"
    # A large init gain makes the output far from the input, so a frame that skipped the
    # model would show.
    spec = GeneratorSpec("mobile_resnet_6blocks", 3, 3, {"ngf": 4, "n_blocks": 1, "init_gain": 1})
    save_generators(path, {"AtoB": (spec, spec.build())})
    return path


def _frames(count=FRAMES):
    """Smooth moving gradients: what an encoder sees in real footage."""
    y, x = np.mgrid[0:SIDE, 0:SIDE]
    return [
        np.stack([(x * 8 + i * 16) % 256, (y * 8) % 256, np.full_like(x, 40 * i % 256)], -1).astype(
            np.uint8
        )
        for i in range(count)
    ]


def make_clip(path, audio="aac", codec="h264", frames=FRAMES, fps=FPS, options=None):
    """A SIDE x SIDE clip of ``frames`` frames at ``fps``, with a mono 440 Hz tone."""
    with av.open(str(path), "w", options=options or {}) as out:
        video = out.add_stream(codec, rate=fps)
        video.width = video.height = SIDE
        video.pix_fmt = "yuv420p"
        sound = out.add_stream(audio, rate=RATE, layout="mono") if audio else None
        for i, image in enumerate(_frames(frames)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            t = np.arange(RATE * frames // fps) / RATE
            tone = (np.sin(2 * np.pi * 440 * t) * 0.3).astype(np.float32)[None]
            fmt = "fltp" if audio == "aac" else "s16"
            data = tone if fmt == "fltp" else (tone * 32767).astype(np.int16)
            chunk = 1024
            for start in range(0, data.shape[1], chunk):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(data[:, start : start + chunk]), format=fmt, layout="mono"
                )
                frame.sample_rate, frame.pts = RATE, start
                out.mux(sound.encode(frame))
            out.mux(sound.encode(None))
    return path


def _probe(path):
    """Frames (RGB), their times, the video stream's rate and codec, audio packet bytes."""
    with av.open(str(path)) as source:
        video = source.streams.video[0]
        info = {
            "codec": video.codec_context.name,
            "rate": video.average_rate,
            "duration": source.duration,
            "audio_codec": [s.codec_context.name for s in source.streams.audio],
        }
        info["audio"] = [bytes(p) for p in source.demux(*source.streams.audio) if p.dts is not None]
        source.seek(0)
        decoded = list(source.decode(video=0))
        info["frames"] = [f.to_ndarray(format="rgb24") for f in decoded]
        info["times"] = [float(f.time) for f in decoded]
    return info


@pytest.mark.parametrize(
    ("suffix", "audio"), [(".mp4", "aac"), (".mkv", "pcm_s16le"), (".mov", "pcm_s16le")]
)
def test_round_trip_keeps_rate_duration_and_audio(model, tmp_path, suffix, audio):
    clip = make_clip(tmp_path / f"clip{suffix}", audio=audio)
    out = tmp_path / f"out{suffix}"
    translator = Translator.load(model, device="cpu", batch_size=3)  # 8 frames: 3 + 3 + 2
    assert convert_video(clip, out, translator) == FRAMES
    src, got = _probe(clip), _probe(out)
    assert got["codec"] == "h264"
    assert got["rate"] == src["rate"] == FPS
    assert got["times"] == src["times"]
    assert got["duration"] == pytest.approx(src["duration"], abs=1e6 / FPS)
    # The audio is copied, not re-encoded: the same codec and the same bytes.
    assert got["audio_codec"] == [audio] and got["audio"] == src["audio"] and src["audio"]
    # Each frame is the translation of the decoded source frame, up to H.264's loss; luma
    # is compared, as 4:2:0 keeps colour at half resolution.
    expected = translator.translate_batch(src["frames"])
    for frame, want, source in zip(got["frames"], expected, src["frames"], strict=True):
        error = np.abs(_luma(frame) - _luma(want)).mean()
        assert error < 15
        assert error < np.abs(_luma(source) - _luma(want)).mean() / 4


def _luma(image):
    return image.astype(float) @ np.array([0.299, 0.587, 0.114])


def test_cli_converts_a_folder_of_images_and_videos(model, tmp_path):
    src = tmp_path / "in"
    make_clip((src / "a").mkdir(parents=True) or src / "a" / "one.mp4")
    make_clip(src / "two.mkv", audio="pcm_s16le", frames=5)
    Image.fromarray(_frames(1)[0]).save(src / "still.png")
    result = CliRunner().invoke(
        main, ["convert", str(model), str(src), str(tmp_path / "out"), "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    assert "converted 3, skipped 0" in result.output
    assert sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file()) == [
        "one.mp4",
        "still.png",
        MANIFEST_NAME,  # one manifest for the images and the videos
        "two.mkv",
    ]
    assert len(_probe(tmp_path / "out" / "two.mkv")["frames"]) == 5
    # The progress bar counts the frames of both videos.
    assert "13/13" in result.stderr

    again = CliRunner().invoke(
        main, ["convert", str(model), str(src), str(tmp_path / "out"), "--no-progress"]
    )
    assert "converted 0, skipped 3" in again.output


def test_cli_one_video_to_a_file_or_into_a_folder(model, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4")
    runner = CliRunner()
    args = ["convert", str(model), str(clip)]
    result = runner.invoke(main, [*args, str(tmp_path / "x.mkv"), "--crf", "30", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert len(_probe(tmp_path / "x.mkv")["frames"]) == FRAMES
    result = runner.invoke(
        main, [*args, str(tmp_path / "dir"), "--codec", "mpeg4", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert _probe(tmp_path / "dir" / "clip.mp4")["codec"] == "mpeg4"


def test_resize_and_crop_options_fail_videos_instead_of_being_ignored(model, tmp_path):
    src = tmp_path / "in"
    make_clip((src.mkdir() or src) / "clip.mp4", audio=None)
    Image.fromarray(_frames(1)[0]).save(src / "still.png")
    args = ["convert", str(model), str(src), str(tmp_path / "out"), "--no-progress"]
    result = CliRunner().invoke(main, [*args, "--resize-shorter", "40", "--center-crop", "32"])
    assert result.exit_code == 1
    assert "converted 1, skipped 0 (already there), failed 1" in result.output
    assert "clip.mp4: --resize-shorter/--center-crop are for images" in result.stderr
    assert Image.open(tmp_path / "out" / "still.png").size == (32, 32)
    assert not (tmp_path / "out" / "clip.mp4").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--codec", "nonesuch"], "--codec nonesuch: no such encoder"),
        (["--codec", "aac"], "--codec aac: a audio encoder, not a video one"),
        (["--codec", "mpeg4", "--crf", "20"], "--crf: the mpeg4 encoder has no CRF"),
    ],
)
def test_bad_video_options_are_one_line(model, tmp_path, args, message):
    clip = make_clip(tmp_path / "clip.mp4", audio=None)
    result = CliRunner().invoke(
        main, ["convert", str(model), str(clip), str(tmp_path / "o.mp4"), *args]
    )
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output


def _truncate(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def test_corrupt_and_truncated_videos_fail_with_a_reason(model, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "good.mp4")
    (src / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    _truncate(make_clip(src / "cut.mkv", audio=None, frames=40), 0.5)
    _truncate(make_clip(src / "cut.mp4", audio=None, frames=40), 0.5)  # index at the end
    # The index first (as for streaming): the file opens and decodes, to fewer frames.
    fast = make_clip(src / "fast.mp4", audio=None, frames=40, options={"movflags": "faststart"})
    _truncate(fast, 0.5)
    translator = Translator.load(model, device="cpu")
    summary = convert_videos(src, tmp_path / "out", translator, progress=False)
    assert summary.converted == 1
    reasons = dict((p.name, r) for p, r in summary.failed)
    assert set(reasons) == {"noise.mp4", "cut.mkv", "cut.mp4", "fast.mp4"}
    assert reasons["noise.mp4"].startswith("not a readable video, corrupt or truncated")
    assert reasons["cut.mp4"].startswith("not a readable video, corrupt or truncated")
    # Where the frames of half the bytes end differs between machines (0.88 s on one, 1.00 s
    # on another): the reason names a time short of the declared 5 s.
    end = re.search(
        r"frames end at (\d+\.\d\d) s of the 5\.00 s its header declares", reasons["cut.mkv"]
    )
    assert end and 0 < float(end[1]) < 5, reasons["cut.mkv"]
    assert reasons["fast.mp4"].startswith("corrupt or truncated after")
    # Nothing half-written is left for a failed video.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.mp4", MANIFEST_NAME]

    result = CliRunner().invoke(
        main, ["convert", str(model), str(src), str(tmp_path / "out2"), "--no-progress"]
    )
    assert result.exit_code == 1
    assert "failed: " in result.stderr and "noise.mp4: not a readable video" in result.stderr


def test_timestamps_of_a_variable_rate_clip_are_kept(model, tmp_path):
    clip = tmp_path / "vfr.mkv"
    with av.open(str(clip), "w") as out:
        video = out.add_stream("h264", rate=FPS)
        video.width = video.height = SIDE
        video.time_base = video.codec_context.time_base = Fraction(1, 1000)
        for image, pts in zip(_frames(4), [0, 100, 450, 500], strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    assert _probe(clip)["times"] == [0.0, 0.1, 0.45, 0.5]
    convert_video(clip, tmp_path / "out.mkv", Translator.load(model, device="cpu"))
    assert _probe(tmp_path / "out.mkv")["times"] == [0.0, 0.1, 0.45, 0.5]


def test_avi_timestamps_that_go_back_still_encode(model, tmp_path):
    # H.264 with B-frames in AVI: decoded frames carry timestamps guessed from decode order,
    # which repeat or go back; every frame is still written, with increasing timestamps.
    clip = make_clip(tmp_path / "clip.avi", audio=None, frames=12)
    with av.open(str(clip)) as source:
        pts = [f.pts for f in source.decode(video=0)]
    assert pts != sorted(pts)
    assert convert_video(clip, tmp_path / "out.mp4", Translator.load(model, device="cpu")) == 12
    times = _probe(tmp_path / "out.mp4")["times"]
    assert len(times) == 12 and times == sorted(set(times))


def test_video_folders_get_the_manifest_the_memory_check_and_leave_named_pipes_alone(
    model, tmp_path
):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "clip.mp4", audio=None)
    os.mkfifo(src / "pipe.mp4")  # opening it would wait for a writer forever
    out = tmp_path / "out"
    translator = Translator.load(model, device="cpu")
    refused = convert_videos(src, out, translator, progress=False, max_pixels=SIDE * SIDE - 1)
    assert refused.not_files == [(src / "pipe.mp4", "a named pipe")]
    assert [(p.name, r.split(" needs")[0]) for p, r in refused.failed] == [
        ("clip.mp4", f"frames of {SIDE}x{SIDE}")
    ]
    assert "--tile" in refused.failed[0][1]
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME]  # nothing half-written

    assert convert_videos(src, out, translator, progress=False).converted == 1
    with pytest.raises(ValueError, match="crf 30 here, None there"):
        convert_videos(src, out, translator, progress=False, crf=30)
    # A video written to a video file is no folder's output: no manifest.
    convert_videos(src / "clip.mp4", tmp_path / "one.mp4", translator, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "one.mp4", "out"]


def test_a_video_written_to_a_file_of_its_own_holds_its_manifest(model, tmp_path):
    """No folder is the conversion's, so the manifest travels in the container's comment,
    and nothing else is written beside the video."""
    clip = tmp_path / "clip.mp4"
    make_clip(clip, audio=None)
    translator = Translator.load(model, device="cpu", tile=16)
    summary = convert_videos(clip, tmp_path / "one.mkv", translator, progress=False, crf=30)
    assert summary.converted == 1
    record = read_record(tmp_path / "one.mkv")
    assert record == describe(translator, ConvertOptions(crf=30))
    assert (record["options"]["crf"], record["options"]["tile"]) == (30, 16)
    assert read_record(clip) is None  # a video of another making holds none
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "one.mkv"]
