"""The conversion manifest: which model and options made the outputs in a folder.

A rerun into the same folder skips the outputs that exist, which is only right when they
were made the same way; a run with another model or other options would leave a silent
mix. The manifest, written before the first output, lets such a run refuse instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from translate.core.atomic import atomic_write_text
from translate.inference.backends import weights_sha256
from translate.inference.options import ConvertOptions, TranslatorOptions, recorded, unrecorded
from translate.inference.translator import Translator

MANIFEST_NAME = "translate-convert.json"
# 2: each image in its own pass and dropout seeded per image (outputs of format 1 could
# depend on batching, so a folder of them is not resumed).
FORMAT = "translate.convert/2"
# How a noise model's outputs drew their codes (a folder of one code for all is not resumed).
NOISE = "per image, from the seed and its path under INPUT"


def describe(translator: Translator, *output_options: Any) -> dict[str, Any]:
    """What decides the outputs' pixels: the model, and the recorded fields of its options
    (resolved: the precision ``auto`` became) and of each output option group given."""
    options = recorded(translator.options, translator)
    if translator.per_image_noise:
        options["noise"] = NOISE
    for group in output_options:
        options.update(recorded(group))
    return {
        "format": FORMAT,
        "model": {
            "architecture": translator.spec.name,
            "direction": translator.direction,
            "weights_sha256": weights_sha256(translator.generator),
        },
        "options": options,
    }


def claim(folder: Path, record: dict[str, Any], overwrite: bool) -> None:
    """Write ``record`` as ``folder``'s manifest, or refuse (``ValueError``) when the folder's
    manifest differs and ``overwrite`` is off."""
    path = folder / MANIFEST_NAME
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        found = None
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"{path}: unreadable manifest ({exc}); remove it or use --overwrite"
        ) from exc
    if isinstance(found, dict) and isinstance(found.get("options"), dict):
        # Options recorded since the manifest was written: what they meant then.
        found["options"] = {**unrecorded(TranslatorOptions, ConvertOptions), **found["options"]}
    if found == record:
        return
    if found is not None and not overwrite:
        differ = ", ".join(differences(found, record))
        raise ValueError(
            f"{folder}: holds outputs of another conversion ({differ}); "
            "use --overwrite to redo them with these options, or another output folder"
        )
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def differences(found: dict[str, Any], record: dict[str, Any]) -> list[str]:
    """What differs between two records, as `key NEW here, OLD there`."""
    out = []
    for section in ("model", "options"):
        old, new = found.get(section) or {}, record[section]
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                out.append(f"{key} {_short(new.get(key))} here, {_short(old.get(key))} there")
    return out or ["another manifest format"]


def _short(value: Any) -> str:
    return f"{value[:12]}..." if isinstance(value, str) and len(value) > 16 else repr(value)
