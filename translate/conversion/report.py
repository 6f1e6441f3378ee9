"""A results page like the reference's: ``index.html`` beside the converted images, one row
per image with input | output | target (when a target folder is given) and, where a target
is known, its L1 / PSNR / SSIM (``translate.core.metrics``) and their means."""

from __future__ import annotations

import html
import os
import urllib.parse
from pathlib import Path

from translate.conversion.convert import IMAGES
from translate.conversion.runner import plan
from translate.core import metrics
from translate.core.atomic import atomic_write_text
from translate.data.images import read_image
from translate.data.layout import by_stem
from translate.data.transforms import to_tensor
from translate.inference.options import ConvertOptions

STYLE = (
    "body{font-family:sans-serif}table{border-collapse:collapse}"
    "td,th{padding:4px;border:1px solid #ccc;vertical-align:top}img{width:256px}"
)
SCORES = ("l1", "psnr", "ssim")


def _link(path: Path, page_dir: Path) -> str:
    return urllib.parse.quote(Path(os.path.relpath(path.resolve(), page_dir.resolve())).as_posix())


def _cell(path: Path | None, page_dir: Path) -> str:
    if path is None:
        return "<td></td>"
    name = html.escape(path.name)
    return f'<td><img src="{_link(path, page_dir)}" alt="{name}"><br>{name}</td>'


def write_report(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    fmt: str = "same",
    targets: str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``output/index.html`` for the outputs of ``translate convert source output``
    that exist; ``targets`` is a folder of ground truth matched by relative path and stem.
    Returns the page's path."""
    source, output = Path(source), Path(output)
    jobs = plan(source, output, ConvertOptions(format=fmt), (IMAGES,)).jobs[IMAGES.noun]
    root = source if source.is_dir() else source.parent
    truth = by_stem(Path(targets)) if targets is not None else {}
    mean = metrics.PairedScores()
    rows = []
    for job in jobs:
        if not job.dst.is_file():
            continue  # failed or not converted yet
        target = truth.get(job.src.relative_to(root).with_suffix("").as_posix())
        scores = ""
        if target is not None:
            out, tgt = (to_tensor(read_image(p, channels=3))[None] for p in (job.dst, target))
            if out.shape == tgt.shape:
                values = {"l1": metrics.l1(out, tgt), "psnr": metrics.psnr(out, tgt)}
                values["ssim"] = metrics.ssim(out, tgt)
                mean.add(out, tgt)
                scores = "".join(f"<td>{values[k]:.4f}</td>" for k in SCORES)
            else:
                scores = '<td colspan="3">target size differs</td>'
        cells = [_cell(p, output) for p in (job.src, job.dst)]
        if targets is not None:
            cells += [_cell(target, output), scores or '<td colspan="3">no target</td>']
        rows.append("<tr>" + "".join(cells) + "</tr>")
    header = ["input", "output"] + (["target", *SCORES] if targets is not None else [])
    summary = f"<p>{len(rows)} image(s) from {html.escape(str(source))}</p>"
    if mean.count:
        result = mean.result()
        means = ", ".join(f"{k.upper()} {result[k]:.4f}" for k in SCORES)
        summary += (
            f"<p>mean over the {mean.count} image(s) with a target: {means} "
            "(L1 on the [-1, 1] scale; PSNR in dB and SSIM on [0, 1], as translate evaluate)</p>"
        )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>translate: "
        f"{html.escape(output.name)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(str(output))}</h1>{summary}<table><tr>"
        + "".join(f"<th>{h}</th>" for h in header)
        + "</tr>\n"
        + "\n".join(rows)
        + "\n</table></body></html>\n"
    )
    path = output / "index.html"
    atomic_write_text(path, page)
    return path
