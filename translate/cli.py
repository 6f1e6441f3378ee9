"""The ``translate`` command. Subcommands live beside the code they drive and are imported
only when run, so ``translate --help`` answers without loading torch."""

from __future__ import annotations

import importlib

import click

from translate import __version__

# name -> (module, attribute, one-line help shown by ``translate --help``)
COMMANDS = {
    "train": ("translate.training.cli", "train", "Train a Pix2Pix or CycleGAN model."),
    "convert": ("translate.inference.cli", "convert", "Translate an image or a folder."),
    "export": ("translate.inference.cli", "export", "Export a generator to TorchScript/ONNX."),
    "info": ("translate.inference.cli", "info", "Describe a model file."),
    "models": ("translate.inference.pretrained", "models", "List the models loaded by name."),
    "evaluate": ("translate.evaluation.cli", "evaluate", "L1/PSNR/SSIM, FID/KID, diversity."),
    "prepare": ("translate.data.cli", "prepare", "Build and reshape datasets."),
    "data": ("translate.data.cli", "data", "Inspect datasets."),
    "serve": ("translate.serve.cli", "serve", "Web page: try models, live camera, watch runs."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][2]) for name in sorted(COMMANDS)])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="translate")
def main() -> None:
    """Image-to-image translation with GANs: train Pix2Pix/CycleGAN, convert folders."""


if __name__ == "__main__":
    main()
