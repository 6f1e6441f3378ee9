"""Small pieces shared by the generators and discriminators: norm layers and weight init."""

from __future__ import annotations

from torch import nn

NORMS = ("batch", "instance", "none")
INITS = ("normal", "xavier", "kaiming", "orthogonal")


def check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{option} must be one of {', '.join(choices)}; got {value!r}")


def norm_layer(norm: str, channels: int, affine: bool | None = None) -> nn.Module:
    """The reference's norm choices: batch norm is affine, instance norm is not (by default).

    ``affine`` overrides the default; forks of the reference code often train affine
    instance norm, and loading their checkpoints needs the same layers.
    """
    check_choice("norm", norm, NORMS)
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True if affine is None else affine)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=bool(affine), track_running_stats=False)
    return nn.Identity()


def conv_bias(norm: str) -> bool:
    """Convolutions before a batch norm need no bias: the norm's shift replaces it."""
    return norm != "batch"


def init_weights(net: nn.Module, init: str = "normal", gain: float = 0.02) -> nn.Module:
    """Initialise convolutions as the reference code does (N(0, 0.02) by default)."""
    check_choice("init", init, INITS)
    for module in net.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            # Spectral norm moves the weight to a parametrization; init the original.
            weight = getattr(module, "parametrizations", None)
            weight = weight.weight.original if weight is not None else module.weight
            if init == "normal":
                nn.init.normal_(weight, 0.0, gain)
            elif init == "xavier":
                nn.init.xavier_normal_(weight, gain=gain)
            elif init == "kaiming":
                nn.init.kaiming_normal_(weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(weight, gain=gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d) and module.affine:
            nn.init.normal_(module.weight, 1.0, gain)
            nn.init.zeros_(module.bias)
    return net
