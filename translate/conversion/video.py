"""Translate video files frame by frame with PyAV (FFmpeg's libraries as a wheel).

Frames are decoded, translated ``batch_size`` at a time and re-encoded (H.264 by default)
with their original timestamps, so the output keeps the source's frame rate, variable or
not, and its duration. Audio streams are copied packet for packet, never re-encoded. The
output is written under a temporary name and renamed when complete: a video that fails
half-way leaves nothing behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

try:  # the video extra; images convert without it
    import av
except ImportError:  # pragma: no cover - exercised only where PyAV is missing
    av = None

from translate.conversion import manifest
from translate.conversion.runner import ConvertSummary, Job, Run, run_conversion
from translate.core.atomic import atomic_path
from translate.inference.memory import MemoryBudget
from translate.inference.options import CODEC, ConvertOptions, VideoOptions
from translate.inference.translator import Translator

# Container suffix -> FFmpeg muxer; the muxer is named, not guessed from the (temporary)
# file name.
MUXERS = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
}
VIDEO_EXTENSIONS = tuple(MUXERS)
# Encoders with a constant-rate-factor quality option, so --crf means the same to each.
CRF_CODECS = ("h264", "libx264", "hevc", "libx265", "libvpx", "libvpx-vp9", "libsvtav1")


# Frame formats that hold class ids exactly (lossy YUV would blend neighbouring ids).
LABEL_FORMATS = ("gray", "gray16le", "gray16be", "pal8")

# The container tag that holds a video's conversion manifest (every muxer here writes it).
RECORD_TAG = "comment"


class VideoError(ValueError):
    """A video that cannot be read, decoded or written; the message starts with its path."""


def is_video_path(path: Path) -> bool:
    return path.suffix.lower() in MUXERS and not path.name.startswith(".")


class VideoSource:
    """Video files as a conversion source (:mod:`translate.conversion.runner`): each file is
    one :func:`convert_video`; the progress bar counts frames."""

    noun = "video"
    groups = (VideoOptions,)

    def accepts(self, path: Path) -> bool:
        return is_video_path(path)

    def output(self, rel: Path, dst: Path, options: ConvertOptions) -> Path:
        return dst / rel

    def check_file_output(self, dst: Path, options: ConvertOptions) -> None:
        """Any video suffix names the container the video is written in."""

    def convert_one(self, job: Job, run: Run, bar: tqdm | None = None) -> None:
        """Convert one video and record it in ``run.summary``."""
        try:
            convert_video(
                job.src,
                job.dst,
                run.translator,
                codec=run.options.codec,
                crf=run.options.crf,
                bar=bar,
                budget=run.budget,
                record=run.file_record,
                name=job.name,
            )
        except VideoError as exc:
            run.fail(job.src, str(exc).removeprefix(f"{job.src}: "))
        else:
            run.summary.converted += 1

    def convert(self, jobs: list[Job], run: Run) -> None:
        _require_av()
        total = sum(_frame_count(job.src) for job in jobs) or None
        with tqdm(total=total, unit="frame", desc="video", disable=not run.options.progress) as bar:
            for job in jobs:
                self.convert_one(job, run, bar)


VIDEOS = VideoSource()


def convert_videos(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    translator: Translator,
    options: ConvertOptions | None = None,
    **changes: Any,
) -> ConvertSummary:
    """Translate the video ``src``, or every video under the folder ``src``, into ``dst``.

    ``options`` (or ``changes`` to its fields) as for :func:`convert_folder`: its codec,
    crf, overwrite, progress and max_pixels apply; with resize_shorter or center_crop
    (images only) each video fails with that reason. The folder ``dst`` gets the same
    manifest as image outputs; one video written to a video file holds it in its
    container's comment (:func:`read_record`). Existing
    outputs are skipped unless ``overwrite``; a video that fails is listed in the summary
    with its reason and the others go on. Under torchrun each rank converts its share.
    """
    options = replace(options or ConvertOptions(), **changes)
    return run_conversion(Path(src), Path(dst), translator, options, (VIDEOS,))


def convert_video(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    translator: Translator,
    *,
    codec: str = CODEC,
    crf: int | None = None,
    bar: tqdm | None = None,
    budget: MemoryBudget | None = None,
    record: dict[str, Any] | None = None,
    name: str | None = None,
) -> int:
    """Translate one video file into ``dst`` (its suffix picks the container); return the
    number of frames. ``crf``: the encoder's constant rate factor (lower is better quality;
    None keeps the encoder's default, 23 for H.264). ``budget``: frames too large for it fail
    the video before any is translated, and a batch holds only as many as fit. ``record``:
    a conversion manifest stored in the container's comment (:func:`read_record`).
    ``name``: the video's (its path under the input folder): a noise model draws the code
    all its frames share from the seed and the name (None: the seed's code)."""
    src, dst = Path(src), Path(dst)
    _require_av()
    if dst.suffix.lower() not in MUXERS:
        raise ValueError(
            f"{dst}: unknown video container {dst.suffix!r}; use one of "
            f"{', '.join(VIDEO_EXTENSIONS)}"
        )
    _check_codec(codec, crf)
    with _read(src) as source, atomic_path(dst) as tmp, _write(src, tmp, dst) as sink:
        if record is not None:
            sink.metadata[RECORD_TAG] = json.dumps(record, sort_keys=True)
        video = source.streams.video[0]
        height, width = video.codec_context.height, video.codec_context.width
        batch_size = translator.batch_size
        if budget is not None:
            too_large = budget.refuse(height, width)
            if too_large is not None:  # refused before it runs: the OS would kill the run
                raise VideoError(f"{src}: frames of {too_large}")
            batch_size = min(batch_size, budget.images_per_pass(height, width))
        audio = {s.index: sink.add_stream_from_template(s) for s in source.streams.audio}
        encoder = _Encoder(sink, video, codec, crf, translator.spec.scale)
        batch: list[av.VideoFrame] = []
        frames, end = 0, None

        read = _label_frame if translator.spec.input_kind == "labels" else _rgb_frame
        pixels = video.codec_context.pix_fmt
        if translator.spec.input_kind == "labels" and pixels not in LABEL_FORMATS:
            raise VideoError(
                f"{src}: a label model takes videos of class ids in gray or palette frames "
                f"({', '.join(LABEL_FORMATS)}: lossless, e.g. ffmpeg -c:v ffv1 -pix_fmt "
                f"gray), this one's frames are {pixels}"
            )

        def translate() -> None:
            try:
                names = None if name is None else [name] * len(batch)
                images = translator.translate_batch([read(f) for f in batch], names)
            except Exception as exc:  # e.g. out of memory: this video fails, the next one runs
                raise VideoError(f"{src}: translation failed near frame {frames} ({exc})") from exc
            encoder.write(images, batch)
            if bar is not None:
                bar.update(len(batch))
            batch.clear()

        for item in _demux(src, source, video):
            if isinstance(item, av.Packet):
                item.stream = audio[item.stream.index]
                sink.mux(item)
                continue
            batch.append(item)
            frames, end = frames + 1, item.time
            if len(batch) == batch_size:
                translate()
        if batch:
            translate()
        encoder.close()
        if not frames:
            raise VideoError(f"{src}: no video frames could be decoded")
        _check_complete(src, source, video, frames, end)
    return frames


def _rgb_frame(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


def _label_frame(frame: av.VideoFrame) -> np.ndarray:
    """A gray or palette frame's class ids as stored (a palette's indices), never converted."""
    ids = frame.to_ndarray()
    return ids[0] if isinstance(ids, tuple) else ids  # pal8: (indices, palette)


def read_record(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The conversion manifest stored in a video written to a file of its own (None when
    it holds none): what the manifest of a folder would say of it."""
    _require_av()
    with av.open(str(path)) as container:
        tags = {key.lower(): value for key, value in container.metadata.items()}
    try:
        record = json.loads(tags.get(RECORD_TAG, ""))
    except ValueError:
        return None
    is_manifest = isinstance(record, dict) and record.get("format") == manifest.FORMAT
    return record if is_manifest else None


def _declared(source: av.container.InputContainer, video: av.VideoStream) -> tuple[int, float]:
    """The frame count and duration in seconds a file's header declares (0 if it does not)."""
    if video.duration is not None and video.time_base is not None:
        seconds = float(video.duration * video.time_base)
    else:  # Matroska and WebM state only the container's duration
        seconds = (source.duration or 0) / 1e6
    return video.frames, seconds


def _check_complete(
    src: Path,
    source: av.container.InputContainer,
    video: av.VideoStream,
    frames: int,
    end: float | None,
) -> None:
    """A file cut short decodes without an error, but to fewer frames or a shorter time
    than its header declares (a second's slack, or 5 %: audio often outlasts the video)."""
    declared_frames, declared_seconds = _declared(source, video)
    if declared_frames and frames < declared_frames:
        raise VideoError(
            f"{src}: truncated or corrupt: decoded {frames} of the {declared_frames} frames "
            "its header lists"
        )
    if end is not None and declared_seconds - end > max(1.0, 0.05 * declared_seconds):
        raise VideoError(
            f"{src}: truncated or corrupt: frames end at {end:.2f} s of the "
            f"{declared_seconds:.2f} s its header declares"
        )


def _require_av() -> None:
    if av is None:
        raise ValueError("video files need PyAV: pip install 'translate[video]'")


def _check_codec(codec: str, crf: int | None) -> None:
    try:
        encoder = av.Codec(codec, "w")
    except (av.FFmpegError, ValueError):
        raise ValueError(f"--codec {codec}: no such encoder in this FFmpeg") from None
    if encoder.type != "video":
        raise ValueError(f"--codec {codec}: a {encoder.type} encoder, not a video one")
    if crf is not None and codec not in CRF_CODECS:
        raise ValueError(f"--crf: the {codec} encoder has no CRF; codecs with one: {CRF_CODECS}")


@contextmanager
def _read(src: Path) -> Iterator[av.container.InputContainer]:
    try:
        source = av.open(str(src))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoError(
            f"{src}: not a readable video, corrupt or truncated ({_why(exc)})"
        ) from exc
    with source:
        if not source.streams.video:
            raise VideoError(f"{src}: no video stream")
        yield source


@contextmanager
def _write(src: Path, tmp: Path, dst: Path) -> Iterator[av.container.OutputContainer]:
    """The output container; encoder and muxer errors name the output (the container may
    not hold the codec or the copied audio)."""
    try:
        with av.open(str(tmp), "w", format=MUXERS[dst.suffix.lower()]) as sink:
            yield sink
    except av.FFmpegError as exc:
        raise VideoError(f"{src}: cannot write {dst} ({_why(exc)})") from exc


def _demux(
    src: Path, source: av.container.InputContainer, video: av.VideoStream
) -> Iterator[av.Packet | av.VideoFrame]:
    """Audio packets as they are, and the video's decoded frames, in file order; a decoder
    error says how far decoding got."""
    decoded = 0
    try:
        for packet in source.demux(video, *source.streams.audio):
            if packet.stream.type == "audio":
                if packet.dts is not None:  # not the demuxer's empty end-of-stream packet
                    yield packet
                continue
            for frame in packet.decode():
                decoded += 1
                yield frame
    except av.FFmpegError as exc:
        raise VideoError(
            f"{src}: corrupt or truncated after {decoded} frames ({_why(exc)})"
        ) from exc


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


class _Encoder:
    """The output video stream: the source's size times the generator's ``scale``, its rate
    and time base, 4:2:0 (what players expect) where the sides are even and the encoder
    takes it; each frame keeps its source frame's timestamp."""

    def __init__(
        self,
        sink: av.container.OutputContainer,
        video: av.VideoStream,
        codec: str,
        crf: int | None,
        scale: int = 1,
    ) -> None:
        stream = sink.add_stream(codec, rate=video.average_rate or video.guessed_rate)
        stream.width = video.codec_context.width * scale
        stream.height = video.codec_context.height * scale
        formats = [f.name for f in stream.codec_context.codec.video_formats or []]
        even = stream.width % 2 == 0 and stream.height % 2 == 0
        preferred = "yuv420p" if even else "yuv444p"
        stream.pix_fmt = preferred if preferred in formats or not formats else formats[0]
        stream.time_base = stream.codec_context.time_base = video.time_base
        if crf is not None:
            stream.options = {"crf": str(crf)}
        self.sink, self.stream = sink, stream
        # One frame in the time base: the step for a timestamp that does not increase.
        rate = video.average_rate or video.guessed_rate or 25
        self.step = max(1, round(1 / (rate * video.time_base)))
        self.last: int | None = None

    def write(self, images: list[np.ndarray], sources: list[av.VideoFrame]) -> None:
        for image, source in zip(images, sources, strict=True):
            if image.shape[-1] == 1:  # a one-channel model's output, shown as gray
                image = np.repeat(image, 3, axis=-1)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts, frame.time_base = self._timestamp(source.pts), self.stream.time_base
            self._encode(frame)

    def close(self) -> None:
        self._encode(None)

    def _timestamp(self, pts: int | None) -> int:
        """The source's timestamp; where it is missing or does not increase (AVI guesses
        timestamps from decode order, which B-frames reorder), one frame after the last."""
        if pts is None or (self.last is not None and pts <= self.last):
            pts = 0 if self.last is None else self.last + self.step
        self.last = pts
        return pts

    def _encode(self, frame: av.VideoFrame | None) -> None:
        for packet in self.stream.encode(frame):
            self.sink.mux(packet)


def _frame_count(path: Path) -> int:
    """The frames a file declares, or its duration times its frame rate (0 if unreadable)."""
    try:
        with av.open(str(path)) as source:
            if not source.streams.video:
                return 0
            video = source.streams.video[0]
            frames, seconds = _declared(source, video)
            return frames or round(seconds * float(video.average_rate or 0))
    except (av.FFmpegError, OSError, UnicodeDecodeError):
        return 0
