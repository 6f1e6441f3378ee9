import os
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from translate.cli import COMMANDS, main


def test_help_lists_every_command():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


def test_every_command_resolves_to_a_click_command():
    for name in COMMANDS:
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage:" in result.output


def test_console_script_is_installed():
    # The script sits beside the interpreter of the environment the project is installed in.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    exe = shutil.which("translate", path=path)
    assert exe, "the `translate` console script is not on PATH"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    assert "convert" in out
