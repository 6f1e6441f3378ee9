"""The CLIs' one error-to-message conversion (translate/core/errors.py)."""

import ast
from pathlib import Path

import click
import pytest

import translate
from translate.core.errors import user_errors
from translate.core.extras import MissingExtra


@pytest.mark.parametrize(
    "error",
    [ValueError("a.png: bad"), FileNotFoundError("a.png"), MissingExtra('pip install "x"')],
)
def test_user_errors_become_one_line_and_exit_1(error):
    with pytest.raises(click.ClickException) as caught, user_errors():
        raise error
    assert caught.value.format_message() == str(error)
    assert caught.value.exit_code == 1


def test_other_errors_keep_their_traceback_and_exit_with_is_called():
    with pytest.raises(RuntimeError), user_errors():
        raise RuntimeError("a bug")
    with pytest.raises(RuntimeError), user_errors((MissingExtra,)):
        raise RuntimeError("only the kinds asked for")

    def exit_with(message):
        raise SystemExit(f"told: {message}")

    with pytest.raises(SystemExit, match="told: bad key"), user_errors(exit_with=exit_with):
        raise ValueError("bad key")


def test_no_cli_converts_exceptions_to_messages_itself():
    """`except ...: raise click.ClickException(str(exc))` belongs in translate/core/errors.py."""
    package = Path(translate.__file__).parent
    copies = []
    for path in package.rglob("cli.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ExceptHandler) and node.name:
                for raised in ast.walk(node):
                    if (
                        isinstance(raised, ast.Call)
                        and ast.unparse(raised.func).endswith("ClickException")
                        and [ast.unparse(arg) for arg in raised.args] == [f"str({node.name})"]
                    ):
                        copies.append(f"{path.relative_to(package)}:{raised.lineno}")
    assert not copies, "use translate.core.errors.user_errors: " + ", ".join(copies)
