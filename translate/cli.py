"""The ``translate`` command. Subcommands live beside the code they drive and are imported
only when run, so ``translate --help`` answers without loading torch."""

from __future__ import annotations

import difflib
import importlib
import warnings

import click

from translate import __version__
from translate.core.errors import user_errors
from translate.core.extras import MissingExtra
from translate.training.help import trainers_by_data, trainers_line

# name -> (module, attribute, one-line help shown by ``translate --help``)
COMMANDS = {
    "train": (
        "translate.training.cli",
        "train",
        f"Train a model; trainers: {trainers_line()}.",
    ),
    "distill": ("translate.training.cli", "distill", "Distill a generator into a small one."),
    "convert": ("translate.conversion.cli", "convert", "Translate an image or a folder."),
    "export": ("translate.conversion.cli", "export", "Export a generator to TorchScript/ONNX."),
    "info": ("translate.conversion.cli", "info", "Describe a model file."),
    "models": ("translate.conversion.cli", "models", "List the models loaded by name."),
    "evaluate": ("translate.apps.evaluate", "evaluate", "L1/PSNR/SSIM, FID/KID, diversity."),
    "prepare": ("translate.data.cli", "prepare", "Build and reshape datasets."),
    "data": ("translate.data.cli", "data", "Inspect datasets."),
    "card": (
        "translate.apps.card",
        "card",
        "Write a run's model card folder for the Hugging Face Hub.",
    ),
    "serve": (
        "translate.apps.serve.cli",
        "serve",
        "Web page: try models, live camera, watch runs.",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        command = getattr(importlib.import_module(module), attr)
        if name != "train":  # train's own help lists them; the others take their models or data
            command.epilog = trainers_by_data()
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name not in COMMANDS and not name.startswith("-"):
            close = difflib.get_close_matches(name, COMMANDS, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            ctx.fail(f"no such command {name!r}{hint} (commands: {', '.join(sorted(COMMANDS))})")
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> object:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            # Only a missing extra here: other errors are each command's to judge.
            with user_errors((MissingExtra,)):
                return super().invoke(ctx)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][2]) for name in sorted(COMMANDS)])


def _show_warning(message: Warning | str, category: type[Warning], *args: object) -> None:
    """Warnings as one ``warning: ...`` line on stderr (not file:line and source)."""
    click.echo(f"warning: {message}", err=True)


@click.group(
    cls=LazyGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Image-to-image translation with GANs: train Pix2Pix, CycleGAN, CUT/FastCUT and "
    f"SinCUT models (trainers: {trainers_line()}), distil them for real time, convert "
    "folders and videos, evaluate, export, serve a web page.",
)
@click.version_option(__version__, prog_name="translate")
@click.pass_context
def main(ctx: click.Context) -> None:
    """The ``translate`` command group; its help (above) names the registered trainers."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
        ctx.exit(0)


if __name__ == "__main__":
    main()
