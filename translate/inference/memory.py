"""How much memory translating an image takes, measured on a small probe, and how much there is.

Activations grow with the pixels of one forward pass, so the bytes per pixel measured on a
small probe image scale to any size. The probe counts the tensors the generator's layers
keep alive at once (the peak of the live set, freed tensors released through weak
references), which is what an inference-mode forward pass holds, whatever the architecture.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import nn

from translate.core.runtime import free_memory
from translate.inference.padding import PadToMultiple
from translate.inference.translator import Translator

# Share of the free memory one forward pass may take: decoding, encoding and the
# allocator's slack need the rest.
MEMORY_SHARE = 0.5
_PROBE_SIDE = 64
# The smallest tile side suggested: below it the passes cost more than the overlaps save.
MIN_TILE = 16
# Float buffers of a tiled image, per output pixel assembled at once (input, output, blend
# weights, uint8 copies): the whole image in memory, one band of tile rows when its rows
# are handed on as they finish (Translator.translate_rows).
TILED_BYTES_PER_PIXEL = 48
# A finished image held whole for a format written at once (up to four 16-bit samples a
# pixel, PIL's copy and the encoded bytes): what a band-by-band translation still holds.
CANVAS_BYTES_PER_PIXEL = 24
# Convolution workspaces and allocator slack the hooks do not see: the process's peak RSS
# grew 1.25x-1.7x the hooks' count on the demo model at 1024-2048 px (AMD EPYC CPU).
_UNSEEN = 1.5


def bytes_per_pixel(translator: Translator) -> float:
    """Peak bytes per input pixel of one translation, measured on a small probe image."""
    generator: nn.Module = translator.generator
    side = -(-_PROBE_SIDE // translator.size_multiple) * translator.size_multiple
    live = peak = 0
    held: dict[int, int] = {}

    def release(key: int) -> None:
        nonlocal live
        live -= held.pop(key, 0)

    def record(_module: nn.Module, _args: object, output: object) -> None:
        nonlocal live, peak
        outputs = output if isinstance(output, (tuple, list)) else [output]
        for tensor in outputs:
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            key = storage.data_ptr()
            if key in held:  # in place, or a view of a tensor already counted
                continue
            held[key] = storage.nbytes()
            live += held[key]
            peak = max(peak, live)
            weakref.finalize(tensor, release, key)

    hooks = [m.register_forward_hook(record) for m in generator.modules() if not list(m.children())]
    # The torch module on a probe of the model's input, whatever the backend: the hooks
    # only see its layers (onnxruntime's arena is sized by the same activations).
    probe = torch.zeros(1, translator.in_channels, side, side, device=translator.device)
    try:
        with torch.inference_mode(), translator.precision.autocast():
            PadToMultiple(generator, translator.spec)(probe)
    finally:
        for hook in hooks:
            hook.remove()
    # The input and output as floats on both sides of the model, besides the layers' peak;
    # the output has scale^2 pixels per input pixel.
    outputs = translator.out_channels * translator.spec.scale**2
    edges = 4 * 2 * (translator.in_channels + outputs) * side * side
    return _UNSEEN * (peak + edges) / (side * side)


@dataclass(frozen=True)
class MemoryBudget:
    """The most memory one forward pass may take, as ``max_pixels`` pixels of the model's
    input (``bytes_per_pixel`` each): an image, or a tile with ``--tile``."""

    translator: Translator
    bytes_per_pixel: float
    max_pixels: int

    @classmethod
    def for_translator(cls, translator: Translator, max_pixels: int | None = None) -> MemoryBudget:
        """Measure the model; ``max_pixels`` None: what fits in half the free memory."""
        per_pixel = bytes_per_pixel(translator)
        if max_pixels is None:
            max_pixels = int(MEMORY_SHARE * free_memory(translator.device) / per_pixel)
        return cls(translator, per_pixel, max(1, max_pixels))

    def needs(self, height: int, width: int, *, band: bool = False, canvas: bool = False) -> float:
        """Estimated bytes to translate one ``height`` x ``width`` image. ``band``: its
        tiles are assembled a band of tile rows at a time (``translate_rows``), so the float
        buffers span one band, not the image; ``canvas``: the finished rows are then held
        whole (a format written at once) rather than written as they come."""
        return self._needs(height, width, self.translator.tile, band, canvas)

    def _needs(
        self, height: int, width: int, tile: int | None, band: bool = False, canvas: bool = False
    ) -> float:
        t = self.translator
        m, s = t.size_multiple, t.spec.scale
        if t.size is not None:
            h = w = t.size
        elif tile is not None:
            h, w = min(tile, height), min(tile, width)
        else:
            h, w = height, width
        pass_pixels = -(-h // m) * m * -(-w // m) * m
        if (h, w) == (height, width):  # one pass: its edges are the image's buffers
            return pass_pixels * self.bytes_per_pixel
        # The assembled buffers are mostly the output's and blend weights': scale^2 each.
        rows = h if band and t.size is None else height
        assembled = rows * width * s**2 * TILED_BYTES_PER_PIXEL
        held = height * width * s**2 * CANVAS_BYTES_PER_PIXEL if band and canvas else 0
        return pass_pixels * self.bytes_per_pixel + assembled + held

    @property
    def limit(self) -> float:
        """The bytes one pass may take."""
        return self.max_pixels * self.bytes_per_pixel

    def fits(self, height: int, width: int, *, band: bool = False, canvas: bool = False) -> bool:
        return self.needs(height, width, band=band, canvas=canvas) <= self.limit

    def refuse(
        self, height: int, width: int, *, band: bool = False, canvas: bool = False
    ) -> str | None:
        """Why an image is too large to translate (``band``, ``canvas``: as :meth:`needs`),
        naming the option that helps; else None."""
        need, limit = self.needs(height, width, band=band, canvas=canvas), self.limit
        if need <= limit:
            return None
        side = self.tile_that_fits(height, width, band=band, canvas=canvas)
        if self.translator.size is not None:
            hint = f"use a smaller --size than {self.translator.size}"
        elif side is None:
            held = "the finished image" if band and canvas else "the whole image's buffers"
            hint = f"even {MIN_TILE}-pixel tiles do not fit beside {held}"
        else:
            # The suggestion must be accepted as given: a tile needs more than its overlap.
            overlap = f" --overlap {side // 4}" if side <= self.translator.overlap else ""
            hint = f"translate it in tiles with --tile {side}{overlap} (or smaller)"
        return (
            f"{width}x{height} needs about {_size(need)} at once, over --max-pixels "
            f"{self.max_pixels:,} ({_size(limit)}); {hint}, or raise --max-pixels"
        )

    def tile_that_fits(
        self,
        height: int,
        width: int,
        smallest: int = MIN_TILE,
        *,
        band: bool = False,
        canvas: bool = False,
    ) -> int | None:
        """The largest tile side with which a ``height`` x ``width`` image fits (its passes
        beside the buffers of tiling: ``band``, ``canvas`` as :meth:`needs`): a multiple of
        64, else 32 or 16; None when ``smallest`` does not fit, or when the translator runs
        at a fixed ``size``.

        Smaller tiles need less, so any tile down to ``smallest`` fits too: a suggestion is
        never refused for the same image.
        """
        if self.translator.size is not None:
            return None
        longest = max(height, width)
        sides = [*range(-(-longest // 64) * 64 - 64, 63, -64), 32, 16]
        for side in sides:
            need = self._needs(height, width, side, band, canvas)
            if smallest <= side < longest and need <= self.limit:
                return side
        return None

    def images_per_pass(self, height: int, width: int) -> int:
        """How many same-size images fit in one pass (at least 1)."""
        return max(1, int(self.limit // self.needs(height, width)))


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"
