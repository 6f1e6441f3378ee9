"""A tiny label-to-image generator with a noise input and a style encoder, as the shared
contract declares them (``noise_dim``, ``forward(x, z=None)``, ``encode_style``), so the
Translator, convert and serve are tested without the zoo's SPADE/OASIS trainers."""

from __future__ import annotations

import torch
from torch import nn

from translate.models.model_file import GeneratorSpec, save_generators
from translate.networks import GENERATORS
from translate.networks.features import Generator
from translate.networks.oasis import with_noise
from translate.networks.spade import noise_code

NAME = "toy_noise_labels_test"
CLASSES = 4
NOISE = 3


@GENERATORS.register(NAME, common=False)
class ToyNoiseLabels(Generator):
    """Per pixel: the one-hot map and the code replicated over the pixels (OASIS's "3D
    noise") through a 1x1 convolution, a second 1x1 convolution and tanh; the style
    encoder is the image's mean colour through a linear layer. Sides padded to a multiple
    of 4. A zoo :class:`Generator`, so its feature taps work as the zoo's do."""

    input_kind = "labels"
    size_multiple = 4
    noise_dim = NOISE

    def __init__(self, in_channels: int = CLASSES, out_channels: int = 3) -> None:
        super().__init__()
        self.join = nn.Identity()  # the map and the code side by side: the first tap point
        self.body = nn.Conv2d(in_channels + NOISE, out_channels, 1)
        self.mix = nn.Conv2d(out_channels, out_channels, 1)
        self.tanh = nn.Tanh()
        self.style = nn.Linear(out_channels, NOISE)
        with torch.no_grad():  # the mixing starts as the identity: the body's output shows
            self.mix.weight.copy_(torch.eye(out_channels)[:, :, None, None])
            self.mix.bias.zero_()

    def tap_points(self) -> list[nn.Module]:
        return [self.join, self.body, self.mix, self.tanh]

    def forward(  # type: ignore[override]
        self,
        x: torch.Tensor,
        z: torch.Tensor | None = None,
        layers: list[int] | None = None,
        with_output: bool = False,
    ) -> torch.Tensor:
        return super().forward(with_noise(x, noise_code(x, z, NOISE)), layers, with_output)

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        return self.tanh(self.mix(self.body(self.join(x))))

    def encode_style(self, image: torch.Tensor) -> torch.Tensor:
        return self.style(image.mean(dim=(2, 3)))


def save_toy(path, labels=None) -> None:  # noqa: ANN001 (a test helper)
    """A toy noise model file at ``path``, its weights spread so that codes show; ``labels``
    (names and colours) recorded in its training metadata when given."""
    torch.manual_seed(0)
    spec = GeneratorSpec.declared(NAME, CLASSES, 3, {})
    net = spec.build()
    with torch.no_grad():
        net.body.weight.mul_(3)
    training = {} if labels is None else {"labels": labels}
    save_generators(path, {"AtoB": (spec, net)}, training=training)
