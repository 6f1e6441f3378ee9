"""One conversion driver over job sources (image files, video files).

:func:`run_conversion` plans (the input files each source accepts and their outputs, with
the input/output checks done once), shards the work between torchrun ranks, skips outputs
that exist (so a rerun resumes), claims the output folder's manifest, sets the memory budget
and sums up what happened in one :class:`ConvertSummary`. A :class:`Source` knows only its
files: which it accepts, where each one's output goes, and how to convert a list of
:class:`Job` (each one read, translated, written atomically and recorded in the summary).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from translate.conversion import manifest
from translate.core.process import Ranks
from translate.data.images import FileScan, scan_files
from translate.inference.memory import MemoryBudget
from translate.inference.options import (
    ConvertOptions,
    ImageOptions,
    VideoOptions,
    check_groups,
    flag,
    group,
    pixel_options_set,
)
from translate.inference.translator import Translator

T = TypeVar("T")
# The option groups that belong to one kind of file; a source takes those it names.
FILE_GROUPS = (ImageOptions, VideoOptions)


@dataclass
class ConvertSummary:
    """What a conversion did; ``failed`` holds (input path, reason) pairs, ``not_files``
    (path, what it is) for accepted names that are not regular files (not read),
    ``first_frame_only`` (path, frames) for multi-frame inputs of which frame 1 was converted."""

    converted: int = 0
    skipped: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    not_files: list[tuple[Path, str]] = field(default_factory=list)
    first_frame_only: list[tuple[Path, int]] = field(default_factory=list)


@dataclass
class Job:
    """One input file, where its translation goes and its name: its path under the input
    folder (a noise model draws its code from the seed and the name)."""

    src: Path
    dst: Path
    name: str


@dataclass
class Run:
    """What a source's conversion shares: the translator, the options, the memory budget,
    this rank and the summary that jobs record themselves in. ``file_record``: the manifest
    record, for one input written to a file of its own (which has no folder to hold it:
    a source whose files hold metadata stores it there)."""

    translator: Translator
    options: ConvertOptions
    budget: MemoryBudget
    ranks: Ranks
    summary: ConvertSummary
    file_record: dict[str, Any] | None = None

    def fail(self, path: Path, reason: str) -> None:
        self.summary.failed.append((path, reason))


class Source(Protocol):
    """A kind of input file conversion handles."""

    noun: str  # "image": named in errors
    groups: tuple[type, ...]  # the option groups of FILE_GROUPS it takes

    def accepts(self, path: Path) -> bool:
        """Whether ``path``'s name is one of this source's files."""

    def output(self, rel: Path, dst: Path, options: ConvertOptions) -> Path:
        """Where the input ``rel`` (relative to the input root) goes under the folder ``dst``."""

    def check_file_output(self, dst: Path, options: ConvertOptions) -> None:
        """Refuse (``ValueError``) the output file ``dst`` of one input when the options
        say otherwise than its name."""

    def convert(self, jobs: list[Job], run: Run) -> None:
        """Convert ``jobs``, recording each in ``run.summary``; a failure is recorded, never
        raised."""


def shard(items: list[T], rank: int, world_size: int) -> list[T]:
    """This rank's share of a sorted list: every ``world_size``-th item, from ``rank``."""
    return items[rank::world_size]


def writes_one_file(src: Path, dst: Path, sources: Sequence[Source]) -> bool:
    """Whether ``dst`` is the output file itself: one input file of a source, and an output
    named as that source's files that is not an existing folder."""
    if not src.is_file() or dst.is_dir():
        return False
    return any(source.accepts(src) and source.accepts(dst) for source in sources)


@dataclass
class Plan:
    """Each source's jobs (sorted by input), the inputs that fail already, and the
    accepted entries that are not regular files."""

    jobs: dict[str, list[Job]]
    failures: list[tuple[Path, str]]
    not_files: list[tuple[Path, str]]
    one_file: bool


def plan(
    src: Path,
    dst: Path,
    options: ConvertOptions,
    sources: Sequence[Source],
    inputs: Sequence[Path] | None = None,
) -> Plan:
    """The jobs of ``src`` (a file or a folder, recursive) into ``dst``; refuses outputs that
    would land inside the input folder or on an input.

    ``inputs`` (see :func:`listed_inputs`) replaces the folder's walk: those files of the
    folder ``src`` and no others, in that order. Two inputs that map to one output
    (``a.png`` and ``a.jpg`` with ``--format png``) keep the first; the second is a
    failure, as is a symbolic link loop.
    """
    if inputs is not None:
        return _plan_listed(src, dst, options, sources, inputs)
    one_file = writes_one_file(src, dst, sources)
    if src.is_dir():
        _check_outside(src, dst)
        scan = scan_files(src, lambda p: any(s.accepts(p) for s in sources))
        root = src
    elif src.is_file():
        if not any(s.accepts(src) for s in sources):
            nouns = " or ".join(s.noun for s in sources)
            raise ValueError(
                f"{src}: not {_article(nouns)} {nouns} file (expected one of their suffixes)"
            )
        scan, root = FileScan(files=[src]), src.parent
    elif src.exists():
        raise ValueError(f"{src}: not a regular file or folder")
    else:
        raise FileNotFoundError(f"{src}: no such file or directory")
    if one_file:
        _source_of(src, sources).check_file_output(dst, options)
    elif dst.exists() and not dst.is_dir():
        raise ValueError(
            f"{dst}: the output must be a folder (outputs mirror the input names), or, for "
            "one input file, a file name with its kind's suffix"
        )
    return _plan_jobs(dst, options, sources, scan, root, one_file, [])


def _plan_listed(
    src: Path, dst: Path, options: ConvertOptions, sources: Sequence[Source], listed: Sequence[Path]
) -> Plan:
    """:func:`plan` of the files ``listed`` under the folder ``src``: no walk, no stat (a
    missing or irregular file fails when read); names no source takes are failures."""
    if not src.is_dir():
        raise NotADirectoryError(
            f"{src}: a file list or glob names files under INPUT; give their folder as INPUT"
        )
    _check_outside(src, dst)
    if dst.exists() and not dst.is_dir():
        raise ValueError(f"{dst}: the output must be a folder (outputs mirror the input names)")
    nouns = " or ".join(s.noun for s in sources)
    failures: list[tuple[Path, str]] = []
    files: list[Path] = []
    for path in dict.fromkeys(listed):  # a name listed twice is one job
        if any(s.accepts(path) for s in sources):
            files.append(path)
        else:
            failures.append((path, f"not {_article(nouns)} {nouns} file"))
    return _plan_jobs(dst, options, sources, FileScan(files=files), src, False, failures)


def _check_outside(src: Path, dst: Path) -> None:
    src_root, dst_res = src.resolve(), dst.resolve()
    if dst_res == src_root or src_root in dst_res.parents:
        raise ValueError(
            f"{dst}: the output folder is inside the input folder {src}; "
            "choose an output folder outside it"
        )


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def listed_inputs(
    root: Path, files_from: Path | None = None, pattern: str | None = None
) -> list[Path] | None:
    """The inputs a file list or a glob names under the folder ``root`` (None: walk it).

    ``files_from``: one path a line, relative to ``root`` (or absolute inside it); blank
    lines and lines starting with ``#`` are skipped. ``pattern``: a glob relative to
    ``root`` (``**/*.png``), expanded once here, sorted. Either way the files are read
    from this list, so a conversion of millions of files walks no folder on its workers.
    """
    if files_from is not None and pattern is not None:
        raise ValueError("--files-from and --glob both choose the inputs; give one")
    if pattern is not None:
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            raise ValueError(
                f"--glob {pattern}: give a pattern relative to INPUT, inside it, e.g. **/*.png"
            )
        return sorted(p for p in root.glob(pattern) if not p.is_dir())
    if files_from is None:
        return None
    try:
        lines = files_from.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{files_from}: cannot read the file list ({exc})") from exc
    out = []
    for number, line in enumerate(lines, 1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        rel = Path(os.path.relpath(name, root)) if os.path.isabs(name) else Path(name)
        if ".." in rel.parts:
            raise ValueError(
                f"{files_from}:{number}: {name} is not under INPUT {root}; list paths relative "
                "to INPUT"
            )
        out.append(root / rel)
    return out


def _plan_jobs(
    dst: Path,
    options: ConvertOptions,
    sources: Sequence[Source],
    scan: FileScan,
    root: Path,
    one_file: bool,
    failures: list[tuple[Path, str]],
) -> Plan:
    """Each input's job, refusing an output that is an input."""
    resolved_inputs: set[Path] = set()
    inputs: list[Path] = []
    for path in scan.files:
        try:
            resolved_inputs.add(path.resolve())
            inputs.append(path)
        except (RuntimeError, OSError):  # Python 3.11/3.12 raise RuntimeError on a loop
            failures.append((path, "a symbolic link loop"))
    jobs: dict[str, list[Job]] = {source.noun: [] for source in sources}
    first_writer: dict[Path, Path] = {}
    dst_root = dst.resolve()
    for path in inputs:
        source = _source_of(path, sources)
        out = dst if one_file else source.output(path.relative_to(root), dst, options)
        try:
            key = out.resolve()
        except (RuntimeError, OSError):
            failures.append((path, f"the output {out} is a symbolic link loop"))
            continue
        # Whatever chose the inputs, a job never writes outside the output folder.
        if not one_file and dst_root not in key.parents:
            raise ValueError(
                f"{path}: its output {out} would be outside OUTPUT {dst}; choose inputs under INPUT"
            )
        if key in resolved_inputs:
            raise ValueError(f"{out}: refusing to write over an input file; choose another output")
        if key in first_writer:
            failures.append((path, f"same output {out} as {first_writer[key]}"))
            continue
        first_writer[key] = path
        jobs[source.noun].append(Job(path, out, path.relative_to(root).as_posix()))
    return Plan(jobs, failures, scan.not_files, one_file)


def _source_of(path: Path, sources: Sequence[Source]) -> Source:
    return next(source for source in sources if source.accepts(path))


@dataclass
class PreparedConversion:
    """A conversion ready to run: the jobs left to do for each source, the summary so far
    (inputs failed or skipped already), the manifest record and whether ``dst`` is one file."""

    todo: dict[str, list[Job]]
    summary: ConvertSummary
    record: dict[str, Any]
    one_file: bool


def prepare_conversion(
    src: Path,
    dst: Path,
    translator: Translator,
    options: ConvertOptions,
    sources: Sequence[Source],
    inputs: Sequence[Path] | None = None,
) -> PreparedConversion:
    """Everything before the first file is read: the plan, the manifest's claim, this rank's
    shard, the outputs that exist (skipped) and the files a source refuses (failed)."""
    check_groups(translator.options, group(options, ImageOptions))
    found = plan(src, dst, options, sources, inputs)
    record = manifest.describe(translator, options)
    if not found.one_file:
        manifest.claim(dst, record, options.overwrite)
    ranks = Ranks.from_env()
    summary = ConvertSummary(
        failed=shard(found.failures, ranks.rank, ranks.world_size),
        not_files=shard(found.not_files, ranks.rank, ranks.world_size),
    )
    todo: dict[str, list[Job]] = {}
    for source in sources:
        todo[source.noun] = []
        for job in shard(found.jobs[source.noun], ranks.rank, ranks.world_size):
            if job.dst.exists() and not options.overwrite:
                summary.skipped += 1
            else:
                todo[source.noun].append(job)
        refused = _unusable(source, options)
        if refused is not None:
            summary.failed += [(job.src, refused) for job in todo[source.noun]]
            todo[source.noun] = []
    return PreparedConversion(todo, summary, record, found.one_file)


def run_conversion(
    src: Path,
    dst: Path,
    translator: Translator,
    options: ConvertOptions,
    sources: Sequence[Source],
    inputs: Sequence[Path] | None = None,
) -> ConvertSummary:
    """Convert the files of ``sources`` under ``src`` (or the ``inputs`` listed under it)
    into ``dst`` (see the module's docstring): one plan, one manifest, one budget, one
    summary."""
    prepared = prepare_conversion(src, dst, translator, options, sources, inputs)
    summary = prepared.summary
    if not any(prepared.todo.values()):
        return summary
    run = Run(
        translator,
        options,
        MemoryBudget.for_translator(translator, options.max_pixels),
        Ranks.from_env(),
        summary,
        prepared.record if prepared.one_file else None,
    )
    for source in sources:
        if prepared.todo[source.noun]:
            source.convert(prepared.todo[source.noun], run)
    return summary


def _unusable(source: Source, options: Any) -> str | None:
    """Why ``source`` refuses its files: options of another kind of file that change what
    is translated (``--center-crop`` for a video), which it cannot honour."""
    for cls in FILE_GROUPS:
        names = [] if cls in source.groups else pixel_options_set(options, cls)
        if names:
            flags = "/".join(flag(name) for name in names)
            verb = "is" if len(names) == 1 else "are"
            return (
                f"{flags} {verb} for {cls.files} (a {source.noun} is translated at its own "
                f"size); convert {source.noun}s without {'it' if len(names) == 1 else 'them'}"
            )
    return None
