"""``translate card RUN OUT_DIR``: a training run as a folder to push to the Hugging Face Hub.

``huggingface-cli upload org/name OUT_DIR`` uploads the folder as it is:

- ``model.safetensors``: the run's generator file (best, else latest), which every MODEL
  argument then reads as ``org/name`` (:mod:`translate.models.hub`);
- ``config.json``: each generator's geometry (architecture and options, channels, scale,
  input kind, size multiple) and the preprocessing, for readers that do not open the file;
- ``README.md``: the model card (YAML front matter the Hub indexes, then task, architecture,
  parameters, GMAC at 256x256, data, validation metrics, samples and how to run it);
- ``sample_grid.png``: the run's validation samples, when it saved any.

It reads a run directory, so it sits above both training (the metrics and samples it
writes) and inference (how a run's generator is found), as ``serve`` does.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import yaml

from translate import __version__
from translate.core.atomic import atomic_path, atomic_write_text
from translate.core.errors import user_errors
from translate.core.run_dir import RunDir
from translate.models.hub import HUB_FILE

if TYPE_CHECKING:
    from translate.models.model_file import LoadedModel

CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
SAMPLE_FILE = "sample_grid.png"
MACS_SIDE = 256  # the side papers quote GMAC at


def write_card(run_dir: Path, out_dir: Path, repo_id: str, overwrite: bool = False) -> list[Path]:
    """Write the upload folder for ``run_dir`` into ``out_dir``; returns the files written.

    ``repo_id`` is the name the card's usage examples load the model by. ``out_dir`` must be
    empty or new (the upload pushes everything in it) unless ``overwrite``.
    """
    run = RunDir(run_dir)
    if not run.config.is_file():
        raise FileNotFoundError(
            f"{run_dir}: not a run directory (no {run.CONFIG}); pass the folder `translate train` "
            "wrote"
        )
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ValueError(
            f"{out_dir}: not empty, and `huggingface-cli upload` would push everything in it; "
            "name a new folder or pass --overwrite"
        )
    # torch (through the model file, the networks and the run report) is imported by the
    # work, not by the module, so `translate card --help` answers at once.
    from translate.models.model_file import load_generators

    source = run.generator()
    model = load_generators(source, "cpu")
    metrics = _shipped_metrics(model, source, run)
    sample = _sample_grid(run, metrics.get("step"))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / HUB_FILE, out_dir / CONFIG_FILE, out_dir / CARD_FILE]
    with atomic_path(written[0]) as tmp:
        shutil.copyfile(source, tmp)
    atomic_write_text(written[1], json.dumps(geometry(model), indent=2) + "\n")
    if sample is not None:
        written.append(out_dir / SAMPLE_FILE)
        with atomic_path(written[-1]) as tmp:
            shutil.copyfile(sample, tmp)
    card = model_card(model, run_dir, source.name, metrics, sample is not None, repo_id)
    atomic_write_text(written[2], card)
    return written


def geometry(model: LoadedModel) -> dict[str, Any]:
    """``config.json``: what a reader needs to feed each generator, without opening the file."""
    generators = {
        direction: {
            "architecture": spec.name,
            "options": spec.options,
            "in_channels": spec.in_channels,
            "out_channels": spec.out_channels,
            "scale": spec.scale,
            "input_kind": spec.input_kind,
            "size_multiple": int(getattr(model.generators[direction], "size_multiple", 1)),
        }
        for direction, spec in model.specs.items()
    }
    return {
        "library_name": "translate",
        "translate_version": __version__,
        "model_file": HUB_FILE,
        "generators": generators,
        "preprocess": model.preprocess.to_dict(),
        "value_range": [-1.0, 1.0],
    }


def _shipped_metrics(model: LoadedModel, source: Path, run: RunDir) -> dict[str, Any]:
    """The validation metrics of the generator shipped, with their ``step``: the best
    scores the file records for ``generator_best``, else the run's last evaluation."""
    from translate.training.report import read_metrics

    best = model.training.get("best_val") or {}
    if source == run.best and best:
        return dict(best)
    evaluations = [r for r in read_metrics(run.metrics) if any(k.startswith("val_") for k in r)]
    return dict(evaluations[-1]) if evaluations else {}


def _sample_grid(run: RunDir, step: int | None) -> Path | None:
    """The samples saved at ``step`` (the shipped generator's), else the newest ones."""
    grids = {sample.step: sample.path for sample in run.samples()}
    if not grids:
        return None
    return grids.get(step) if step in grids else grids[max(grids)]


def model_card(
    model: LoadedModel,
    run_dir: Path,
    file_name: str,
    metrics: dict[str, Any],
    has_sample: bool,
    repo_id: str,
) -> str:
    """The README.md of the upload folder: front matter, then the card in Markdown."""
    training = model.training
    trainer = str(training.get("model", "translate"))
    front = {
        "library_name": "translate",
        "pipeline_tag": "image-to-image",
        "tags": list(dict.fromkeys(["image-to-image", "gan", trainer, "translate"])),
    }
    directions = list(model.specs)
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).strip(),
        "---",
        "",
        f"# {run_dir.name}",
        "",
        _task(model, trainer),
        "",
        "## Architecture",
        "",
        "| | " + " | ".join(directions) + " |",
        "|---|" + "---|" * len(directions),
    ]
    for label, values in _architecture_rows(model).items():
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    lines += ["", "## Training data", ""]
    preprocess = model.preprocess.transforms
    for label, value in (
        ("trainer", trainer),
        ("dataset", training.get("dataset")),
        ("preprocessing", f"{preprocess.mode}, crop {preprocess.crop_size}"),
        ("epochs", training.get("epochs")),
        ("steps", training.get("steps")),
        ("validation split", training.get("val_split")),
        ("validation images", training.get("val_images")),
    ):
        if value is not None:
            lines.append(f"- {label}: {value}")
    lines += ["", "## Validation metrics", ""]
    scores = {k: v for k, v in metrics.items() if k.startswith("val_") and _finite(v)}
    if scores:
        lines += [
            f"`{file_name}` of the run, at step {metrics.get('step', '?')}:",
            "",
            "| metric | value |",
            "|---|---|",
            *(f"| {name} | {value:.4g} |" for name, value in scores.items()),
        ]
    else:
        lines.append("The run logged no validation metrics.")
    if has_sample:
        lines += [
            "",
            "## Samples",
            "",
            f"![validation samples]({SAMPLE_FILE})",
            "",
            "The run's validation images (one row each; input, output and, where there is "
            "one, the target side by side).",
        ]
    lines += ["", _usage(repo_id, directions), ""]
    return "\n".join(lines)


def _task(model: LoadedModel, trainer: str) -> str:
    spec = next(iter(model.specs.values()))
    what = f"{spec.scale}x super-resolution" if spec.scale > 1 else "image-to-image translation"
    return (
        f"A {trainer} generator for {what} ({spec.in_channels} -> {spec.out_channels} "
        f"channels), trained with translate and stored as its generator file "
        f"(translate's own format, `{HUB_FILE}`)."
    )


def _architecture_rows(model: LoadedModel) -> dict[str, list[str]]:
    from translate.networks import count_macs, count_parameters

    rows: dict[str, list[str]] = {
        "architecture": [],
        "options": [],
        "parameters": [],
        f"GMAC at {MACS_SIDE}x{MACS_SIDE}": [],
        "input": [],
        "output": [],
    }
    for direction, spec in model.specs.items():
        net = model.generators[direction]
        multiple = int(getattr(net, "size_multiple", 1))
        side = multiple * math.ceil(MACS_SIDE / multiple)  # the network pads to its multiple
        macs = count_macs(net, (spec.in_channels, side, side))
        rows["architecture"].append(f"`{spec.name}`")
        rows["options"].append(", ".join(f"{k}={v}" for k, v in spec.options.items()) or "-")
        rows["parameters"].append(f"{count_parameters(net):,}")
        rows[f"GMAC at {MACS_SIDE}x{MACS_SIDE}"].append(f"{macs / 1e9:.3f}")
        rows["input"].append(
            f"{spec.in_channels} channels ({spec.input_kind}), sides padded to a multiple of "
            f"{multiple}"
        )
        rows["output"].append(f"{spec.out_channels} channels, {spec.scale}x the input's size")
    return rows


def _usage(repo_id: str, directions: list[str]) -> str:
    other = [d for d in directions if d != "AtoB"]
    direction = f" --direction {other[0]}" if other else ""
    return "\n".join(
        [
            "## How to run it",
            "",
            "```bash",
            'pip install "translate[hub]"',
            f"translate convert {repo_id} photos/ translated/",
            *([f"translate convert {repo_id} photos/ translated/{direction}"] if other else []),
            f"translate info {repo_id}",
            "```",
            "",
            "```python",
            "from PIL import Image",
            "from translate import Translator",
            "",
            f'translator = Translator.from_pretrained("{repo_id}")',
            'translator(Image.open("photo.png")).save("translated.png")',
            "```",
            "",
            f"A revision is `{repo_id}@<branch, tag or commit>`; with `HF_HUB_OFFLINE=1` the "
            "model is read from the local Hugging Face cache.",
        ]
    )


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@click.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--repo-id",
    default=None,
    help="The Hub name the card's examples load it by (default: your-name/<RUN's name>).",
)
@click.option("--overwrite", is_flag=True, help="Write into a folder that holds files already.")
def card(run: Path, out_dir: Path, repo_id: str | None, overwrite: bool) -> None:
    """Write OUT_DIR for `huggingface-cli upload ORG/NAME OUT_DIR`: RUN's generator as
    model.safetensors, config.json (its geometry), README.md (the model card) and the
    validation samples."""
    with user_errors():
        written = write_card(run, out_dir, repo_id or f"your-name/{run.resolve().name}", overwrite)
    for path in written:
        click.echo(path)
    click.echo(f"upload: huggingface-cli upload {repo_id or 'ORG/NAME'} {out_dir}")
