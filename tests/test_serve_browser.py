"""The web page in headless Chromium: images in and out, the live camera, a training run
watched while a test trains it. Skipped without the Debian chromium/chromium-driver."""

from __future__ import annotations

import importlib.util
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("browser", ROOT / "tools" / "browser.py")
browser = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(browser)

if browser.missing():
    pytest.skip(f"browser tests need Chromium: {browser.missing()}", allow_module_level=True)
pytest.importorskip("fastapi", reason="translate serve needs the serve extra")

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from translate.apps.serve.app import create_app  # noqa: E402
from translate.apps.serve.models import DESCRIPTIONS, EXAMPLES, SAMPLES, Models  # noqa: E402
from translate.apps.serve.runs import Runs  # noqa: E402
from translate.apps.serve.server import BackgroundServer  # noqa: E402
from translate.data.images import list_images, write_image  # noqa: E402
from translate.models.loading import bundled_path  # noqa: E402
from translate.training.configure import from_dict  # noqa: E402
from translate.training.engine import Engine  # noqa: E402

WAIT = 90  # seconds: generous for a busy 2-core machine, never reached when things work


@pytest.fixture(scope="module")
def models() -> Models:
    return Models(["demo"], device="cpu")


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def driver(downloads: Path) -> Iterator[Any]:
    chrome = browser.chromium(download_dir=downloads)
    yield chrome
    chrome.quit()


def wait(driver: Any, condition: Any, message: str) -> Any:
    return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(
        lambda d: condition(d), message=message
    )


def test_upload_shows_outputs_at_input_size_and_zips_them(
    driver: Any, models: Models, tmp_path: Path, downloads: Path
) -> None:
    rng = np.random.default_rng(0)
    sizes = {"a.png": (40, 28), "b.jpg": (36, 20)}
    paths = []
    for name, (w, h) in sizes.items():
        write_image(tmp_path / name, rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        paths.append(tmp_path / name)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    paths.append(tmp_path / "broken.png")
    # with a token, as when serving other hosts: the printed URL's token becomes the cookie
    # that the page's own requests carry
    with BackgroundServer(create_app(models, token="t0k")) as url:
        driver.get(url + "?token=t0k")
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"), "no models")
        driver.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in paths))
        cards = wait(
            driver,
            lambda d: (
                (c := d.find_elements(By.CSS_SELECTOR, ".card"))
                and len(c) == 3
                and all(x.get_attribute("data-state") in ("done", "error") for x in c)
                and c
            ),
            "the three files were not all answered",
        )
        by_name = {c.get_attribute("title"): c for c in cards}
        for name, size in sizes.items():
            card = by_name[name]
            assert card.get_attribute("data-state") == "done"
            after = card.find_element(By.CSS_SELECTOR, "img.after")
            natural = driver.execute_script(
                "return [arguments[0].naturalWidth, arguments[0].naturalHeight]", after
            )
            assert tuple(natural) == size
            assert (
                card.find_element(By.CSS_SELECTOR, "a.download").get_attribute("download")
                == name.rsplit(".", 1)[0] + "_demo.png"
            )
        broken = by_name["broken.png"]
        assert broken.get_attribute("data-state") == "error"
        assert broken.find_element(By.CSS_SELECTOR, ".status").text.startswith(
            "broken.png: not a readable image"
        )
        # no broken-image icon under the "before" badge: a line saying why there is no preview
        preview = broken.find_element(By.CSS_SELECTOR, ".no-preview")
        wait(driver, lambda d: preview.is_displayed(), "no 'no preview' line for broken.png")
        assert not broken.find_element(By.CSS_SELECTOR, "img.before").is_displayed()
        assert not broken.find_element(By.CSS_SELECTOR, ".before-tag").is_displayed()
        driver.find_element(By.ID, "zip").click()
        archive = downloads / "translations.zip"
        # Chromium writes translations.zip.crdownload and renames it when complete
        wait(driver, lambda d: archive.is_file(), "no zip was downloaded")
        with zipfile.ZipFile(archive) as zf:
            assert zf.testzip() is None
            assert sorted(zf.namelist()) == ["a_demo.png", "b_demo.png"]
            with zf.open("a_demo.png") as f:
                assert Image.open(f).size == sizes["a.png"]


def test_the_empty_page_says_what_demo_does_and_offers_its_samples(
    driver: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "runs" / "maps"
    run.mkdir(parents=True)
    (run / "generator_latest.safetensors").write_bytes(bundled_path("demo").read_bytes())
    (run / "config.yaml").write_text("model: cyclegan\n")
    (run / "metrics.jsonl").write_text('{"step": 1, "epoch": 1, "G_GAN": 0.5}\n')
    served = Models(["demo", str(run)], device="cpu")
    samples = [p.name for p in list_images(SAMPLES)]
    with BackgroundServer(create_app(served, Runs(tmp_path / "runs"))) as url:
        driver.get(url)
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"), "no models")
        options = driver.find_elements(By.CSS_SELECTOR, "#model option")
        assert [o.text for o in options] == ["demo", "maps"]  # not the run folder's path
        assert driver.find_element(By.ID, "about").text.startswith(f"demo: {DESCRIPTIONS['demo']}")
        buttons = driver.find_elements(By.CSS_SELECTOR, "#example-list button")
        assert [b.get_attribute("title") for b in buttons] == samples
        buttons[0].click()
        card = wait(
            driver,
            lambda d: d.find_elements(By.CSS_SELECTOR, ".card[data-state=done]"),
            "the example was not translated",
        )[0]
        assert card.get_attribute("title") == samples[0]
        size = Image.open(SAMPLES / samples[0]).size
        assert card.find_element(By.CSS_SELECTOR, ".status").text == f"{size[0]} x {size[1]}"
        Select(driver.find_element(By.ID, "model")).select_by_visible_text("maps")
        assert not driver.find_element(By.ID, "examples").is_displayed()  # none for this model

        driver.get(url + "#runs")
        table = driver.find_element(By.ID, "val-table")
        wait(driver, lambda d: "unpaired run" in table.text, "an unpaired run awaits scores")
        # installed from a wheel there is no datasets/samples: the page offers no examples
        monkeypatch.setitem(EXAMPLES, "demo", tmp_path / "not_installed")
        driver.get(url + "#try")
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"), "no models")
        assert not driver.find_element(By.ID, "examples").is_displayed()


def test_live_camera_frames_come_back_with_fps(driver: Any, models: Models) -> None:
    with BackgroundServer(create_app(models, token="t0k")) as url:
        driver.get(url + "?token=t0k#live")
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"), "no models")
        driver.find_element(By.ID, "live-width").send_keys("128")
        driver.find_element(By.ID, "live-start").click()
        out = driver.find_element(By.ID, "live-out")
        wait(driver, lambda d: int(out.get_attribute("data-frames")) >= 5, "no frames came back")
        fps = float(driver.find_element(By.ID, "fps").text)
        latency = float(driver.find_element(By.ID, "latency").text)
        assert fps > 0 and latency > 0
        assert driver.find_element(By.ID, "live-error").get_attribute("hidden")
        width = driver.execute_script("return arguments[0].width", out)
        assert width == 128
        driver.find_element(By.ID, "live-stop").click()


def test_paint_a_stroke_and_the_synthesised_image_changes(
    driver: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from noise_generator import save_toy

    toy = tmp_path / "toy.safetensors"
    save_toy(toy, labels={"names": ["sea", "land", "hill", "ice"]})
    label_model = Models([str(toy)], device="cpu")
    pixels = "return Array.from(arguments[0].getContext('2d').getImageData(0, 0, 256, 256).data)"
    # null while the image is between two sources (a newer reply loading)
    image_bytes = (
        "const c = document.createElement('canvas'); const img = arguments[0];"
        "if (!img.complete || !img.naturalWidth) return null;"
        "c.width = img.naturalWidth; c.height = img.naturalHeight;"
        "const g = c.getContext('2d'); g.drawImage(img, 0, 0);"
        "return Array.from(g.getImageData(0, 0, c.width, c.height).data)"
    )
    with BackgroundServer(create_app(label_model)) as url:
        driver.get(url + "#paint")
        nav = driver.find_element(By.ID, "nav-paint")
        wait(driver, lambda d: nav.is_displayed(), "no paint tab for a label model")
        out = driver.find_element(By.ID, "paint-out")
        wait(driver, lambda d: int(out.get_attribute("data-frames")) >= 1, "no first image")
        before = wait(driver, lambda d: driver.execute_script(image_bytes, out), "no image")
        assert len(before) == 256 * 256 * 4
        swatches = driver.find_elements(By.CSS_SELECTOR, "#palette .swatch")
        assert [b.text for b in swatches] == ["sea", "land", "hill", "ice"]
        swatches[2].click()
        canvas = driver.find_element(By.ID, "paint-canvas")

        def redrawn(after: Callable[[], None], why: str) -> None:
            """Do ``after``, then wait for a new frame whose image differs from the last."""
            frames = int(out.get_attribute("data-frames"))
            shown = wait(driver, lambda d: driver.execute_script(image_bytes, out), "no image")
            after()
            wait(
                driver,
                lambda d: (
                    int(out.get_attribute("data-frames")) > frames
                    and driver.execute_script(image_bytes, out) not in (None, shown)
                ),
                why,
            )

        # a stroke across the canvas's middle, from its left third to its right third
        redrawn(
            ActionChains(driver)
            .move_to_element_with_offset(canvas, -100, 0)
            .click_and_hold()
            .move_by_offset(60, 0)
            .move_by_offset(60, 0)
            .move_by_offset(60, 0)
            .release()
            .perform,
            "the image did not change after the stroke",
        )
        # the map holds the picked class under the stroke and class 0 away from it
        painted = driver.execute_script(pixels, canvas)
        hill = label_model.info()[0].classes[2]["color"]
        middle, corner = 4 * (128 * 256 + 128), 0
        assert painted[middle : middle + 3] == hill
        assert painted[corner : corner + 3] != hill
        # a new seed is new noise for the same map
        redrawn(driver.find_element(By.ID, "new-noise").click, "new noise did not change the image")
        assert driver.find_element(By.ID, "paint-error").get_attribute("hidden")
        # an upload (palette indices, not its colours) replaces the map, at its own size
        ids = np.zeros((30, 40), np.uint8)
        ids[:, 20:] = 3
        upload = Image.fromarray(ids, "P")
        upload.putpalette([7, 7, 7] * 256)
        upload.save(tmp_path / "map.png")
        driver.find_element(By.ID, "label-file").send_keys(str(tmp_path / "map.png"))
        wait(driver, lambda d: canvas.get_attribute("width") == "40", "the upload was not drawn")
        colors = [c["color"] for c in label_model.info()[0].classes]
        read = "return Array.from(arguments[0].getContext('2d').getImageData(0, 0, 40, 30).data)"
        drawn = driver.execute_script(read, canvas)
        assert drawn[:3] == colors[0] and drawn[4 * 39 : 4 * 39 + 3] == colors[3]
        with capsys.disabled():  # logged for the lead, never asserted (timings: benchmark.py)
            print(f"\npaint redraw {driver.find_element(By.ID, 'paint-ms').text} ms (toy model)")


def _tiny_run_config(data: Path) -> dict[str, Any]:
    return {
        "model": "pix2pix",
        "data": {
            "root": str(data),
            "preprocess": {"mode": "resize_and_crop", "load_size": 18, "crop_size": 16},
            "num_workers": 0,
            "val_size": 2,
        },
        "generator": {"name": "unet", "options": {"ngf": 4, "num_downs": 4}},
        "discriminator": {"options": {"ndf": 4, "n_layers": 2}},
        "schedule": {"epochs": 10, "decay_epochs": 0},
        "train": {"batch_size": 2, "max_steps": 6},
        "log": {"every": 1, "eval_every": 2, "checkpoint_every": 1000, "tensorboard": False},
    }


def test_training_page_shows_new_loss_points_as_the_run_writes(
    driver: Any, models: Models, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 2)):
        for i in range(count):
            a = np.kron(
                rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), np.ones((4, 4, 1), np.uint8)
            )
            write_image(tmp_path / "data" / split / f"{i}.png", np.concatenate([a, 255 - a], 1))
    run_dir = tmp_path / "runs" / "tiny"
    engine = Engine(from_dict(_tiny_run_config(tmp_path / "data")), run_dir, progress=False)
    # The run pauses before logging step 3 until the page has shown steps 1 and 2.
    go_on = threading.Event()
    log = engine.report.log

    def gated_log(step: int, *args: Any, **kwargs: Any) -> None:
        if step == 3:
            go_on.wait(WAIT)
        log(step, *args, **kwargs)

    engine.report.log = gated_log
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    training = threading.Thread(target=engine.fit, daemon=True)
    training.start()
    try:
        with BackgroundServer(create_app(models, Runs(tmp_path / "runs"))) as url:
            driver.get(url + "#runs")
            chart = wait(driver, lambda d: d.find_element(By.ID, "chart-losses"), "no chart")
            points = lambda: int(chart.get_attribute("data-points"))  # noqa: E731
            wait(driver, lambda d: points() == 2, "the first two loss points did not show")
            assert "tiny" in driver.find_element(By.ID, "run-list").text
            go_on.set()
            wait(driver, lambda d: points() >= 3, "no new loss point appeared")
            wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#samples img"), "no samples")
            wait(
                driver,
                lambda d: "val_L1" in d.find_element(By.ID, "val-table").text,
                "no validation scores",
            )
            config = driver.execute_script("return document.getElementById('config').textContent")
            assert "pix2pix" in config
            # one chart, with its own y axis, per validation metric (PSNR and L1 differ 100x)
            metrics = Runs(tmp_path / "runs").metrics("tiny")
            keys = sorted(k for k, panel in metrics["panels"].items() if panel == "validation")
            assert {"val_L1", "val_PSNR"} <= set(keys)
            box = driver.find_element(By.ID, "charts-validation")
            wait(driver, lambda d: box.get_attribute("data-charts") == str(len(keys)), "charts")
            charts = box.find_elements(By.TAG_NAME, "canvas")
            assert sorted(c.get_attribute("data-key") for c in charts) == keys
            ranges = {
                c.get_attribute("data-key"): [
                    float(v) for v in c.get_attribute("data-range").split(",")
                ]
                for c in charts
            }
            l1 = [r["val_L1"] for r in metrics["records"] if "val_L1" in r]
            assert ranges["val_L1"][1] < min(
                r["val_PSNR"] for r in metrics["records"] if "val_PSNR" in r
            )
            assert ranges["val_PSNR"][0] > max(l1)
    finally:
        go_on.set()
        training.join(WAIT)
        torch.set_num_threads(threads)
    assert not training.is_alive()
