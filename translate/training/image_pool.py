"""The image buffer of Shrivastava et al.: D sees a mix of current and earlier fakes."""

from __future__ import annotations

import torch


class ImagePool:
    """Keeps up to ``size`` generated images; ``query`` returns a batch of the same size where
    each image is, with probability 1/2 once the pool is full, swapped for a stored one.

    Randomness comes from torch's global generator, so a resumed run makes the same choices.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(()).item() > 0.5:
                index = int(torch.randint(0, self.size, ()).item())
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict[str, torch.Tensor | int]:
        stacked = torch.cat(self.images).cpu() if self.images else torch.empty(0)
        return {"size": self.size, "images": stacked}

    def load_state_dict(self, state: dict[str, torch.Tensor | int], device: torch.device) -> None:
        images = state["images"]
        assert isinstance(images, torch.Tensor)
        self.images = [img.unsqueeze(0).to(device) for img in images] if images.numel() else []
