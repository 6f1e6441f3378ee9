"""Screenshots of the `translate serve` pages for the README, taken in headless Chromium.

    python tools/serve_screenshots.py [--out docs] [--steps 80] [--label-steps 600]

It trains a small Pix2Pix run on the twelve sample tiles and their real shaded relief
(``datasets/samples`` and ``tests/data/demo_targets``; 10 train, 2 val), serves ``demo`` and
that run with ``--runs``, and saves ``serve_images.png`` (four tiles translated by demo),
``serve_live.png`` (Chromium's fake camera through demo) and ``serve_training.png``. Then it
makes worldmaps-labels, trains a tiny SPADE on it (64 px crops, ``--label-steps``), serves
it and saves ``serve_paint.png``: a validation map uploaded to the Paint tab and a stroke of
mountains painted across it. Needs the Debian chromium and chromium-driver packages.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from translate.apps.serve.app import create_app
from translate.apps.serve.models import Models
from translate.apps.serve.runs import Runs
from translate.apps.serve.server import BackgroundServer
from translate.data.images import list_images, read_image, write_image
from translate.data.worldmaps import build_worldmaps_labels
from translate.training.configure import from_dict
from translate.training.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "datasets" / "samples"
TARGETS = ROOT / "tests" / "data" / "demo_targets"
SHOWN = ("r01_c07", "r02_c03", "r02_c11", "r05_c15")
WAIT = 120
LABEL_MAP = "r02_c03.png"  # the validation map the paint screenshot starts from

_spec = importlib.util.spec_from_file_location("browser", ROOT / "tools" / "browser.py")
browser = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(browser)


def train_run(data: Path, run_dir: Path, steps: int) -> None:
    """A small real run: aligned input|target pairs, 64 px crops, a 4-level U-Net."""
    tiles = list_images(SAMPLES)
    for i, tile in enumerate(tiles):
        target = read_image(next(TARGETS.glob(f"{tile.stem}.*")))
        split = "val" if i >= len(tiles) - 2 else "train"
        write_image(data / split / tile.name, np.concatenate([read_image(tile), target], axis=1))
    config = {
        "model": "pix2pix",
        "data": {
            "root": str(data),
            "preprocess": {"mode": "resize_and_crop", "load_size": 72, "crop_size": 64},
            "num_workers": 0,
            "val_size": 2,
        },
        "generator": {"name": "unet", "options": {"ngf": 8, "num_downs": 4}},
        "discriminator": {"options": {"ndf": 8, "n_layers": 2}},
        "schedule": {"epochs": 1000, "decay_epochs": 0},
        "train": {"batch_size": 4, "max_steps": steps},
        "log": {"every": 2, "eval_every": 20, "checkpoint_every": 1000, "tensorboard": False},
    }
    Engine(from_dict(config), run_dir, progress=False).fit()


def train_label_run(data: Path, run_dir: Path, steps: int) -> None:
    """A tiny SPADE on worldmaps-labels: 64 px crops, ngf 8, its classes' names and colours
    recorded for the paint tab's palette; validated once, at the end, which records the
    batch norm statistics that score better (a short run's running ones lag)."""
    build_worldmaps_labels(data, progress=False)
    labels = yaml.safe_load((data / "labels.yaml").read_text())["data"]
    config = {
        "model": "spade",
        "data": {
            "root": str(data),
            **labels,
            "segmenter_steps": 2,
            "preprocess": {"mode": "crop", "crop_size": 64},
            "num_workers": 0,
            "val_size": 2,
        },
        "generator": {"options": {"ngf": 8, "hidden": 16}},
        "discriminator": {"options": {"ndf": 8}},
        "train": {"batch_size": 4, "max_steps": steps},
        "log": {"every": 10, "eval_every": steps, "checkpoint_every": 10**6, "tensorboard": False},
    }
    Engine(from_dict(config), run_dir, progress=False).fit()


def paint_screenshot(url: str, label_map: Path, out: Path) -> Path:
    """The Paint tab: ``label_map`` uploaded, a stroke of ice across it, the redraw."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver = browser.chromium(size=(1280, 720))
    try:
        driver.get(url + "#paint")
        nav = driver.find_element(By.ID, "nav-paint")
        wait(driver, lambda d: nav.is_displayed(), "no paint tab for the label model")
        canvas, image = (
            driver.find_element(By.ID, "paint-canvas"),
            driver.find_element(By.ID, "paint-out"),
        )
        driver.find_element(By.ID, "label-file").send_keys(str(label_map))
        wait(driver, lambda d: canvas.get_attribute("width") == "128", "the map was not drawn")
        swatches = driver.find_elements(By.CSS_SELECTOR, "#palette .swatch")
        next(b for b in swatches if b.text == "ice").click()
        frames = int(image.get_attribute("data-frames"))
        stroke = ActionChains(driver).move_to_element_with_offset(canvas, -90, 30).click_and_hold()
        for _ in range(6):
            stroke = stroke.move_by_offset(30, -10)
        stroke.release().perform()
        wait(driver, lambda d: int(image.get_attribute("data-frames")) > frames, "no redraw")
        path = out / "serve_paint.png"
        if not driver.save_screenshot(str(path)):
            raise OSError(f"{path}: the screenshot could not be written")
        return path
    finally:
        driver.quit()


def wait(driver: Any, condition: Any, message: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT, poll_frequency=0.2).until(condition, message=message)


def screenshots(url: str, out: Path) -> list[Path]:
    from selenium.webdriver.common.by import By

    driver = browser.chromium(size=(1280, 860))
    out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []

    def save(name: str) -> None:
        saved.append(out / name)
        # Selenium answers False, with no exception, when it could not write the file.
        if not driver.save_screenshot(str(saved[-1])):
            raise OSError(f"{saved[-1]}: the screenshot could not be written")

    try:
        driver.get(url)
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"), "no models")
        files = [str(next(SAMPLES.glob(f"{name}.*"))) for name in SHOWN]
        driver.find_element(By.ID, "files").send_keys("\n".join(files))
        wait(
            driver,
            lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card[data-state=done]")) == len(files),
            "the images were not translated",
        )
        save("serve_images.png")

        driver.get(url + "#live")
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"), "no models")
        driver.find_element(By.ID, "live-start").click()
        frames = driver.find_element(By.ID, "live-out")
        wait(driver, lambda d: int(frames.get_attribute("data-frames")) >= 30, "no live frames")
        save("serve_live.png")
        driver.find_element(By.ID, "live-stop").click()

        driver.set_window_size(1280, 1750)
        driver.get(url + "#runs")
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#samples img"), "no samples")
        wait(driver, lambda d: "val_L1" in d.find_element(By.ID, "val-table").text, "no scores")
        save("serve_training.png")
    finally:
        driver.quit()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--steps", type=int, default=80, help="training steps of the run shown")
    parser.add_argument(
        "--label-steps", type=int, default=600, help="training steps of the SPADE painted with"
    )
    args = parser.parse_args()
    if browser.missing():
        raise SystemExit(browser.missing())
    out = args.out.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # the run is served as a model by the short name runs/worldmaps_small
        runs = Path("runs")
        train_run(Path("data"), runs / "worldmaps_small", args.steps)
        models = Models(["demo", str(runs / "worldmaps_small")])
        with BackgroundServer(create_app(models, Runs(runs))) as url:
            for path in screenshots(url, out):
                print(f"wrote {path}")
        train_label_run(Path("labels"), runs / "spade_small", args.label_steps)
        with BackgroundServer(create_app(Models([str(runs / "spade_small")]))) as url:
            label_map = Path("labels") / "val" / "A" / LABEL_MAP
            print(f"wrote {paint_screenshot(url, label_map.resolve(), out)}")


if __name__ == "__main__":
    main()
