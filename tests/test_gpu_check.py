"""tools/gpu_check.sh on a machine without a GPU: it parses, refuses to pretend, and says how."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "gpu_check.sh"


def test_script_parses() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


def test_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(SCRIPT), "--fast"], capture_output=True, text=True)
    assert done.returncode == 2 and "usage: bash tools/gpu_check.sh" in done.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_without_a_gpu_it_names_the_cpu_option(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(SCRIPT), "--out", str(tmp_path / "out")], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "no CUDA GPU visible" in done.stderr and "--cpu" in done.stderr
