"""The generators' base class: ``G(x)`` translates, ``G(x, layers=[...])`` returns features.

Feature taps serve losses that compare what the generator sees inside, such as CUT's
PatchNCE, for every generator in the zoo without the loss knowing its architecture.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class _Reached(Exception):
    """Raised by the deepest tap's hook: the layers after it need not run."""


class Generator(nn.Module):
    """Base class of the zoo's generators; subclasses define :meth:`generate`.

    ``G(x, layers=[i, ...])`` returns, in the order asked, the outputs of the tap points
    ``i`` on ``x`` and runs the network only as far as the deepest one; with
    ``with_output=True`` it runs it to the end and returns ``(G(x), features)`` from that
    one pass (distillation needs both, with gradients). Tap points are
    :meth:`tap_points`: by default every leaf module in the order it was registered, which
    is execution order for networks built from ``nn.Sequential``. Negative indices count
    from the end. A tap returns the tensor its layer produced; an in-place activation right
    after it may update that tensor, as in the reference CUT code.
    """

    size_multiple = 1  # input sides must be a multiple of this
    # True where the state dict is an upstream project's key layout (Real-ESRGAN's networks):
    # a generator file holding it alone then stores it unprefixed, for spandrel and the like.
    upstream_layout = False

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        """The translation of ``x`` (NCHW); every generator of the zoo defines it."""
        raise NotImplementedError

    def tap_points(self) -> list[nn.Module]:
        """The modules whose outputs ``G(x, layers=[i, ...])`` returns: every leaf module, in
        registration order, unless a generator overrides it with coarser points."""
        return [m for m in self.modules() if next(m.children(), None) is None]

    def trunk_taps(self) -> list[int]:
        """Tap points along the residual trunk, where a generator has one: its input and
        the blocks a third, two thirds and all the way along (the stages GAN Compression
        distills); empty where there is none."""
        return []

    def forward(
        self, x: torch.Tensor, layers: list[int] | None = None, with_output: bool = False
    ) -> torch.Tensor:
        """``generate(x)``; with ``layers``, the feature maps of those tap points (and with
        ``with_output``, ``(output, features)`` from one pass)."""
        if layers is not None and not torch.jit.is_scripting():
            return self._tap(x, layers, with_output)
        return self.generate(x)

    @torch.jit.unused
    def _tap(self, x: torch.Tensor, layers: list[int], with_output: bool) -> Any:
        points = self.tap_points()
        try:
            index = [range(len(points))[i] for i in layers]
        except (IndexError, TypeError):
            raise ValueError(
                f"layers {list(layers)}: {type(self).__name__} has tap points 0..{len(points) - 1}"
            ) from None
        if not index:
            return (self.generate(x), []) if with_output else []
        found: dict[int, torch.Tensor] = {}
        deepest = max(index)

        def hook(i: int) -> Any:
            def capture(module: nn.Module, args: Any, output: torch.Tensor) -> None:
                found[i] = output
                if i == deepest and not with_output:
                    raise _Reached

            return capture

        handles = [points[i].register_forward_hook(hook(i)) for i in sorted(set(index))]
        output = None
        try:
            output = self.generate(x)
        except _Reached:
            pass
        finally:
            for handle in handles:
                handle.remove()
        features = [found[i] for i in index]
        return (output, features) if with_output else features
