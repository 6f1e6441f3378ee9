"""No module reaches itself through imports (the graph: tests/import_graph.py), and what a
command does not use, it does not import."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from import_graph import PACKAGE, find_cycle, import_graph
from training_helpers import tiny

from translate.cli import COMMANDS

SR_GENERATOR = {"name": "srvgg_compact", "options": {"num_feat": 4, "num_conv": 1}}


def test_find_cycle_names_the_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_relative_and_function_level_imports_are_edges():
    edges = import_graph()["translate.models.loading"]
    assert "translate.models.hub" in edges  # at the top
    assert "translate.models.reference" in edges  # inside load_model


def test_no_module_imports_one_that_imports_it_back():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_serve_imports_no_private_names():
    """serve is a client of the other layers: what it needs of them is their public API."""
    private = []
    for path in (PACKAGE / "apps" / "serve").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [alias.name for alias in node.names if alias.name.startswith("_")]
                private += [f"{path.name}: {node.module}.{name}" for name in names]
    assert not private, "serve imports private names: " + ", ".join(private)


# Seconds to import each; a command that does not do their work must not load them.
HEAVY = ("torch", "torchvision", "albumentations", "cv2", "kornia")
# Runs `translate ARGS...` in this interpreter (standalone_mode=False returns instead of
# exiting), then prints the heavy modules the command left in sys.modules.
_RUN_CLI = """
import json, sys
import click
from translate.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
except click.ClickException as exc:
    exc.show()
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def _heavy_after(*args: str) -> tuple[list[str], str]:
    """The heavy modules `translate ARGS` imported, and what it printed before."""
    done = subprocess.run(
        [sys.executable, "-c", _RUN_CLI.format(heavy=HEAVY), *args],
        capture_output=True, text=True, check=True, cwd=PACKAGE.parent,  # `-c` imports from cwd
    )  # fmt: skip
    *printed, last = done.stdout.strip().splitlines()
    return json.loads(last), "\n".join(printed) + done.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["models"], "demo-sr"),
        *[([name, "--help"], "Usage:") for name in sorted(COMMANDS)],
    ],
)  # fmt: skip
def test_commands_that_do_no_work_import_nothing_heavy(args: list[str], says: str) -> None:
    heavy, printed = _heavy_after(*args)
    assert says in printed  # the command ran
    assert heavy == [], f"translate {' '.join(args)} imported {', '.join(heavy)}"


def test_convert_imports_no_albumentations(tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "in").mkdir()
    Image.new("RGB", (40, 40), (90, 140, 200)).save(tmp_path / "in" / "a.png")
    heavy, printed = _heavy_after("convert", "demo", str(tmp_path / "in"), str(tmp_path / "out"))
    assert (tmp_path / "out" / "a.png").is_file(), printed
    assert "albumentations" not in heavy  # training's augmentations, not translating's


# Builds the trainer of the config (JSON) in argv[1] for the run directory argv[2], as
# `translate train` does before its first step, then prints the heavy modules it imported.
_START_TRAINING = """
import json, sys
from pathlib import Path
from translate.training.configure import from_dict
from translate.training.engine import Engine
Engine(from_dict(json.loads(sys.argv[1])), Path(sys.argv[2]), progress=False)
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


@pytest.mark.parametrize("model", ["pix2pix", "sr"])
def test_training_starts_without_torchvision_or_kornia(
    model: str,
    data: Path,
    tmp_path: Path,
) -> None:
    if model == "sr":  # the paired images as HR photos, shrunk 4x by bicubic
        data_keys = {"degradation": "bicubic", "preprocess": {"mode": "crop", "crop_size": 16}}
        config = tiny("sr", data, data=data_keys, generator=SR_GENERATOR)
        config["discriminator"] = {"name": "unet_sn", "options": {"num_feat": 4}}
    else:
        config = tiny("pix2pix", data)
    script = _START_TRAINING.format(heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(config), str(tmp_path / "run")],
        capture_output=True, text=True, check=True, cwd=PACKAGE.parent,
    )  # fmt: skip
    # torchvision: only for a perceptual loss (none here) and sample grids; kornia: only for
    # scores and the blurring degradations, after the first step
    heavy = json.loads(done.stdout.strip().splitlines()[-1])
    assert not {"torchvision", "kornia"} & set(heavy), heavy


def _expected_counts(path: Path) -> tuple[int, float]:
    """The parameters and GMACs of a generator file's AtoB network, counted from the network
    at the side translate info quotes (its training crop, a multiple of its size multiple)."""
    from translate.models.model_file import load_generators
    from translate.networks import count_macs, count_parameters

    model = load_generators(path)
    net, spec = model.generators["AtoB"], model.specs["AtoB"]
    side = model.preprocess.transforms.crop_size
    assert side % spec.size_multiple == 0  # else info rounds it up
    return count_parameters(net), round(count_macs(net, (spec.in_channels, side, side)) / 1e9, 3)


def test_info_reads_the_counts_a_file_stores_without_importing_anything_heavy() -> None:
    from translate.models.loading import bundled_path

    heavy, printed = _heavy_after("info", "demo")
    parameters, gmac = _expected_counts(bundled_path("demo"))
    assert f"parameters: {parameters:,}\n" in printed and f"gmac: {gmac}\n" in printed
    assert heavy == [], f"translate info demo imported {', '.join(heavy)}"
