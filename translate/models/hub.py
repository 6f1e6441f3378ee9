"""Models on the Hugging Face Hub: ``org/name`` or ``org/name@revision`` as MODEL.

A repository holds the generator file as ``model.safetensors`` (what ``translate card``
writes). It is fetched with ``huggingface_hub`` (the ``hub`` extra) into the Hub's own cache,
with its progress bar, and then read like any local ``.safetensors`` file: no pickle is ever
loaded from the Hub. With ``HF_HUB_OFFLINE=1`` only the cache is read.

:func:`parse_repo_id` decides whether a MODEL argument is such a name; :mod:`.loading` asks
it only after an existing local path, a bundled and a pretrained name have had their turn.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

from translate.core.extras import needs_extra

HUB_FILE = "model.safetensors"
# The Hub's own rule for a name (huggingface_hub's validate_repo_id): letters, digits, "-",
# "_" and "."; not starting or ending with "-" or "."; at most 96 characters. The revision is
# a branch, tag or commit, which may hold "/" (refs/pr/1).
_NAME = r"[A-Za-z0-9_](?:[\w.-]*[A-Za-z0-9_])?"
_REPO = re.compile(rf"^(?P<repo>{_NAME}/{_NAME})(?:@(?P<revision>[\w./-]+))?$")
# A missing file with one of these suffixes is a typo of a local path, never a repository.
_FILE_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".onnx")


class HubModel(NamedTuple):
    """A repository on the Hub and the revision asked for (None: the default branch)."""

    repo_id: str
    revision: str | None

    def __str__(self) -> str:
        return self.repo_id if self.revision is None else f"{self.repo_id}@{self.revision}"


def parse_repo_id(source: str) -> HubModel | None:
    """``org/name[@revision]`` as a :class:`HubModel`; None for anything that is not one."""
    match = _REPO.match(source)
    if match is None or len(match["repo"]) > 96 or "--" in source or ".." in match["repo"]:
        return None
    if match["repo"].lower().endswith(_FILE_SUFFIXES):
        return None
    return HubModel(match["repo"], match["revision"])


def offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is set now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def hub_cache() -> Path | None:
    """The cache that ``HF_HUB_CACHE``/``HF_HOME`` name now (None: huggingface_hub's default);
    read at each call for the same reason as :func:`offline`."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return None


def hub_model_path(model: HubModel) -> Path:
    """The cached ``model.safetensors`` of ``model``, downloaded first unless offline.

    Raises ``FileNotFoundError`` with one line naming the repository and the fix when the
    repository, the revision or the file does not exist, or when it is not cached offline.
    """
    with needs_extra("hub", f"the Hugging Face Hub model {model}"):
        from huggingface_hub import errors as hub_errors
        from huggingface_hub import hf_hub_download
    from translate import __version__

    try:
        path = hf_hub_download(
            model.repo_id,
            HUB_FILE,
            revision=model.revision,
            cache_dir=hub_cache(),
            local_files_only=offline(),
            library_name="translate",
            library_version=__version__,
        )
    except hub_errors.LocalEntryNotFoundError as exc:  # offline, or the Hub unreachable
        why = (
            "HF_HUB_OFFLINE is set"
            if offline()
            else "the Hub could not be reached (HF_HUB_OFFLINE=1 reads the cache without retrying)"
        )
        raise FileNotFoundError(
            f"{model}: {HUB_FILE} is not in the local Hub cache and {why}; download it once "
            f"online (`huggingface-cli download {model.repo_id} {HUB_FILE}`) or pass a local file"
        ) from exc
    except hub_errors.RepositoryNotFoundError as exc:
        raise FileNotFoundError(
            f"{model}: no such Hugging Face Hub repository (or it is private or gated: "
            "`huggingface-cli login` first); a local path of that name does not exist either"
        ) from exc
    except hub_errors.RevisionNotFoundError as exc:
        raise FileNotFoundError(
            f"{model}: the repository has no revision {model.revision!r}; name a branch, tag "
            "or commit it has"
        ) from exc
    except hub_errors.EntryNotFoundError as exc:
        raise FileNotFoundError(
            f"{model}: the repository holds no {HUB_FILE}, the generator file translate "
            "loads (`translate card RUN OUT_DIR` writes one to upload)"
        ) from exc
    return Path(path)
