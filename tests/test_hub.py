"""Models on the Hugging Face Hub: org/name[@revision] as MODEL.

The tests fill a Hub cache (conftest's ``hub_cache``) as huggingface_hub lays it out:
blobs named by the file's sha256, snapshots/<commit>/model.safetensors a relative link to
its blob, refs/main naming the commit; under a temporary HF_HOME, with HF_HUB_OFFLINE=1 and
sockets refused, so nothing here reaches the Hub.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from translate.cli import main
from translate.data.images import read_image, write_image
from translate.inference.translator import Translator
from translate.models.hub import HubModel, parse_repo_id
from translate.models.model_file import GeneratorSpec, load_generators, save_generators

pytest.importorskip("huggingface_hub")  # the `hub` extra; part of `test`, so CI runs these

REPO = "someone/tiny-model"


def _generator(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    spec = GeneratorSpec("resnet_6blocks", 3, 3, {"ngf": 4, "n_blocks": 1})
    save_generators(path, {"AtoB": (spec, spec.build())})
    return path


def put_in_cache(cache: Path, repo_id: str, commit: str, model_file: Path, main_ref=True) -> Path:
    """``model_file`` as revision ``commit`` of ``repo_id``, as hf_hub_download stores it."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    data = model_file.read_bytes()
    sha = hashlib.sha256(data).hexdigest()  # an LFS file's etag, the blob's name
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "blobs" / sha).write_bytes(data)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").symlink_to(Path("..", "..", "blobs", sha))
    if main_ref:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
    return snapshot / "model.safetensors"


@pytest.fixture
def two_revisions(hub_cache: Path, tmp_path: Path) -> dict[str, Path]:
    """REPO with an old commit and main at a newer one, of different weights."""
    old = _generator(tmp_path / "old.safetensors", seed=1)
    new = _generator(tmp_path / "new.safetensors", seed=2)
    put_in_cache(hub_cache, REPO, "a" * 40, old, main_ref=False)
    put_in_cache(hub_cache, REPO, "b" * 40, new)
    return {"old": old, "new": new}


def write_inputs(folder: Path) -> Path:
    """Two small random images to convert."""
    rng = np.random.default_rng(0)
    for i in range(2):
        write_image(folder / f"{i}.png", rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    return folder


@pytest.fixture
def images(tmp_path: Path) -> Path:
    return write_inputs(tmp_path / "in")


def _outputs(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: read_image(p) for p in sorted(folder.glob("*.png"))}


def _convert(model: str | Path, images: Path, out: Path) -> dict[str, np.ndarray]:
    args = ["convert", str(model), str(images), str(out), "--no-progress", "--device", "cpu"]
    result = CliRunner().invoke(main, [*args, "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    return _outputs(out)


def test_repo_ids_are_told_from_local_names() -> None:
    assert parse_repo_id("org/name") == HubModel("org/name", None)
    assert parse_repo_id("org/na.me-2@v1.0") == HubModel("org/na.me-2", "v1.0")
    assert parse_repo_id("org/name@refs/pr/1") == HubModel("org/name", "refs/pr/1")
    for local in ("demo", "a/b/c", "../b", "./b", "org/g.safetensors", "o/x.pth", "a--b/c"):
        assert parse_repo_id(local) is None, local


def test_info_and_convert_read_the_offline_cache(
    two_revisions: dict[str, Path], images: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(main, ["info", REPO, "--json"])
    assert result.exit_code == 0, result.output
    described = json.loads(result.output)
    assert described["generators"]["AtoB"]["architecture"] == "resnet_6blocks"
    assert described["source"] == REPO
    from_hub = _convert(REPO, images, tmp_path / "hub_out")
    local = _convert(two_revisions["new"], images, tmp_path / "local_out")
    assert from_hub.keys() == local.keys() and len(local) == 2
    for name in local:
        np.testing.assert_array_equal(from_hub[name], local[name])


def test_a_revision_picks_its_snapshot(
    two_revisions: dict[str, Path], images: Path, tmp_path: Path
) -> None:
    old = _convert(f"{REPO}@{'a' * 40}", images, tmp_path / "old_hub")
    old_local = _convert(two_revisions["old"], images, tmp_path / "old_local")
    new = _convert(REPO, images, tmp_path / "new_hub")
    for name in old:
        np.testing.assert_array_equal(old[name], old_local[name])
    assert any(not np.array_equal(old[name], new[name]) for name in old)


def test_translator_from_pretrained(two_revisions: dict[str, Path]) -> None:
    x = torch.rand(1, 3, 16, 16)
    options = {"device": "cpu", "precision": "fp32"}
    for revision, name in ((None, "new"), ("a" * 40, "old")):
        expected = Translator.load(two_revisions[name], **options)(x)
        got = Translator.from_pretrained(REPO, revision=revision, **options)(x)
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    torch.testing.assert_close(
        Translator.load(f"{REPO}@{'a' * 40}", **options)(x),
        Translator.load(two_revisions["old"], **options)(x),
        rtol=0,
        atol=0,
    )


def test_an_existing_local_path_wins_over_the_hub(
    two_revisions: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = _generator(tmp_path / "someone" / "tiny-model" / "generator_best.safetensors", 3)
    monkeypatch.chdir(tmp_path)
    x = torch.rand(1, 3, 16, 16)
    got = Translator.load(REPO, device="cpu", precision="fp32")(x)
    torch.testing.assert_close(got, Translator.load(local, device="cpu", precision="fp32")(x))


def test_missing_repo_offline_is_one_line(hub_cache: Path) -> None:
    result = CliRunner().invoke(main, ["info", "nobody/nothing"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "nobody/nothing" in lines[0] and "HF_HUB_OFFLINE" in lines[0]
    assert "huggingface-cli download nobody/nothing model.safetensors" in lines[0]
    assert "Traceback" not in result.output


def test_hub_errors_online_are_one_line(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the Hub answers (no such repository, revision or file) is named in one line;
    hf_hub_download is stood in for, since the tests never go online."""
    import huggingface_hub
    from huggingface_hub import errors

    monkeypatch.delenv("HF_HUB_OFFLINE")
    cases = {
        errors.RepositoryNotFoundError: "no such Hugging Face Hub repository",
        errors.RevisionNotFoundError: "has no revision 'v9'",
        errors.RemoteEntryNotFoundError: "holds no model.safetensors",
    }
    for kind, message in cases.items():

        def fail(*args: object, kind: type = kind, **kwargs: object) -> None:
            answer = kind.__new__(kind)  # without the HTTP response its __init__ reads
            Exception.__init__(answer, "404 from the Hub")
            raise answer

        monkeypatch.setattr(huggingface_hub, "hf_hub_download", fail)
        result = CliRunner().invoke(main, ["info", "org/name@v9"])
        assert result.exit_code == 1
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert result.output.startswith("Error: org/name@v9: ") and message in result.output
    assert os.environ.get("HF_HUB_OFFLINE") is None


def test_export_takes_a_repository(two_revisions: dict[str, Path], tmp_path: Path) -> None:
    """export reads MODEL through load_model too: the revision's weights are what it writes."""
    out = tmp_path / "g.pt"
    result = CliRunner().invoke(main, ["export", f"{REPO}@{'a' * 40}", str(out)])
    assert result.exit_code == 0, result.output
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    expected = load_generators(two_revisions["old"], "cpu").generators["AtoB"](x)
    torch.testing.assert_close(torch.jit.load(str(out))(x), expected)
