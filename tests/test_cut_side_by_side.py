"""tools/cut_side_by_side.py's pure parts: the two recipes, reading both logs and the table.
The authors' code itself is not needed."""

import json

import pytest
from conftest import tool_module

from translate.training.configure import from_dict


@pytest.fixture(scope="module")
def sbs():
    with tool_module("cut_side_by_side") as module:
        yield module


def option(arguments, name):
    return arguments[arguments.index(name) + 1]


@pytest.mark.parametrize("antialias", [False, True])
def test_both_sides_train_the_same_recipe(sbs, tmp_path, antialias):
    recipe = sbs.Recipe(mode="cut", ngf=8, ndf=4, crop=32, epochs=3, decay_epochs=2,
                        nce_layers=(0, 4, 8), antialias=antialias)  # fmt: skip
    theirs = sbs.authors_train_arguments(recipe, tmp_path, tmp_path / "checkpoints")
    config = from_dict(sbs.our_config(recipe, tmp_path))
    assert (
        config.model == "cut"
        and config.loss.mode == "cut"
        and option(theirs, "--CUT_mode") == "CUT"
    )
    assert config.generator.name == option(theirs, "--netG") == "resnet_6blocks"
    assert config.generator.options["ngf"] == int(option(theirs, "--ngf")) == 8
    assert config.discriminator.options["ndf"] == int(option(theirs, "--ndf")) == 4
    assert config.generator.options["antialias"] is config.discriminator.options["antialias"]
    assert config.generator.options["antialias"] is antialias
    assert ("--no_antialias" in theirs) is ("--no_antialias_up" in theirs) is (not antialias)
    assert config.loss.nce_layers == [0, 4, 8] and option(theirs, "--nce_layers") == "0,4,8"
    assert config.data.preprocess.crop_size == int(option(theirs, "--crop_size")) == 32
    assert not config.data.preprocess.flip and "--no_flip" in theirs
    assert (config.schedule.epochs, config.schedule.decay_epochs) == (3, 2)
    assert (option(theirs, "--n_epochs"), option(theirs, "--n_epochs_decay")) == ("3", "2")
    assert config.loss.gan_mode == option(theirs, "--gan_mode") == "lsgan"
    assert config.optim.lr_g == config.optim.lr_d == float(option(theirs, "--lr"))
    assert config.optim.beta1 == float(option(theirs, "--beta1"))
    assert config.train.batch_size == int(option(theirs, "--batch_size")) == 1
    assert config.train.precision == "fp32" and config.train.threads == 1
    assert config.discriminator.pool_size == 0 and config.log.every == 1
    assert option(theirs, "--gpu_ids") == "-1" and option(theirs, "--print_freq") == "1"
    # each mode's own identity term and flips unless named, then named to both
    assert "--flip_equivariance" not in theirs and config.loss.flip_equivariance is False
    flipped = sbs.Recipe(mode="fastcut", flip_equivariance=False)
    assert option(sbs.authors_arguments(flipped, tmp_path, tmp_path), "--flip_equivariance") == (
        "False"
    )
    assert from_dict(sbs.our_config(flipped, tmp_path)).loss.flip_equivariance is False


def test_steps_read_from_both_logs(sbs):
    line = "(epoch: 3, iters: 7, time: 0.111, data: 0.006) G_GAN: 0.961 D_real: 0.007 NCE: 4.8"
    assert sbs.authors_step(line, per_epoch=96) == 2 * 96 + 7
    assert sbs.authors_step("saving the model at the end of epoch 1, iters 96", 96) is None
    assert sbs.authors_step("learning rate = 0.0002000", 96) is None
    assert sbs.our_step(json.dumps({"step": 12, "epoch": 1, "G_GAN": 0.9, "D": 0.2})) == 12
    assert sbs.our_step(json.dumps({"step": 200, "val_NCE": 4.1})) is None  # a validation row
    assert sbs.our_step("not json") is None


def test_import_check_compares_same_named_pngs(sbs, tmp_path):
    import numpy as np
    from PIL import Image

    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    image = np.full((4, 4, 3), 100, np.uint8)
    Image.fromarray(image).save(ours / "a.png")
    image[1, 2, 0] = 103
    Image.fromarray(image).save(theirs / "a.png")
    assert sbs.largest_difference(ours, theirs) == {"max_pixel_difference": 3, "images": 1}
    Image.fromarray(image).save(theirs / "b.png")
    with pytest.raises(RuntimeError, match="b.png: missing"):
        sbs.largest_difference(ours, theirs)


def test_table_has_a_row_per_mode_and_side(sbs):
    machine = {"cpu": "Xeon", "cores": 2, "cpu flags": "avx2", "torch": "2.14.1"}
    trained = {"iterations": 1920, "s_per_iteration": 0.1234, "wall_s": 250.0}
    scores = {"psnr": 18.456, "ssim": 0.71234, "l1": 0.2, "fid": 40.0, "kid": 0.01}
    mode = {
        "recipe": {**vars(sbs.Recipe()), "nce_layers": [0, 4, 8, 12, 16]},
        "training": {"ours": trained, "authors": {**trained, "s_per_iteration": 0.2}},
        "scores": {"ours": scores, "authors": scores,
                   "import_check": {"max_pixel_difference": 1, "images": 32}},
    }  # fmt: skip
    report = {
        "machine": machine, "uptime_before": "load 0.01", "uptime_after": "load 2.0",
        "modes": {"fastcut": mode}, "no_translation": {"psnr": 6.5}, "inception_weights": "w",
    }  # fmt: skip
    table = sbs.markdown(report)
    assert "| FastCUT | ours | 1,920 | 0.123 | 250 | 18.46 | 0.7123 |" in table
    assert "| FastCUT | authors | 1,920 | 0.200 |" in table
    assert "| – | testA as is | – | – | – | 6.50 |" in table
    assert "largest difference 1 grey levels over 32 images" in table
    assert "strided (--no_antialias) resampling, 64 px crops, 10 + 10 epochs" in table
    assert "not scored" not in table


def test_bad_arguments_are_refused_before_anything_runs(sbs, tmp_path, capsys):
    for argv, message in (
        (["--modes", "cut,sincut"], "--modes cut,sincut"),
        (["--cores", "0"], "two core numbers"),
        (["--data", str(tmp_path)], "trainA: no such folder"),
    ):
        with pytest.raises(SystemExit):
            sbs.main([*argv, "--out", str(tmp_path / "out")])
        assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_seed_shim_seeds_only_when_asked(sbs, monkeypatch):
    import random

    import numpy
    import torch

    def draws():
        return random.random(), float(numpy.random.rand()), float(torch.rand(()))

    monkeypatch.setenv(sbs.SEED_VARIABLE, "7")
    exec(sbs.SEED_SHIM, {})
    first = draws()
    exec(sbs.SEED_SHIM, {})
    assert draws() == first
    monkeypatch.delenv(sbs.SEED_VARIABLE)
    exec(sbs.SEED_SHIM, {})  # unseeded: the generators go on where they were
    assert draws() != first
