"""`translate serve`'s API in process: translation, bad files, limits, busy, token, live, runs."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import re
import shutil
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

pytest.importorskip("fastapi", reason="translate serve needs the serve extra")
import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from translate.apps.serve import app as app_module  # noqa: E402
from translate.apps.serve.app import FRAME_HEADER, create_app  # noqa: E402
from translate.apps.serve.cli import is_loopback  # noqa: E402
from translate.apps.serve.models import (  # noqa: E402
    DESCRIPTIONS,
    EXAMPLES,
    SAMPLES,
    TRANSLATORS_KEPT,
    Busy,
    Gate,
    Models,
    labels,
)
from translate.apps.serve.runs import Runs  # noqa: E402
from translate.apps.serve.server import BackgroundServer  # noqa: E402
from translate.cli import main  # noqa: E402
from translate.data.images import list_images  # noqa: E402
from translate.inference.memory import TILED_BYTES_PER_PIXEL  # noqa: E402
from translate.models.loading import load_model  # noqa: E402
from translate.models.model_file import GeneratorSpec, save_generators  # noqa: E402

# What the page sends with an upload; anything else is refused (see test_cross_site_...).
UPLOAD = {"content-type": "application/octet-stream"}


def png(width: int, height: int, seed: int = 0, fmt: str = "PNG") -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def two_way(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CycleGAN-like file: two different generators."""
    path = tmp_path_factory.mktemp("model") / "cycle.safetensors"
    spec = GeneratorSpec("resnet_6blocks", 3, 3, {"ngf": 4, "n_blocks": 1})
    save_generators(path, {"AtoB": (spec, spec.build()), "BtoA": (spec, spec.build())})
    return path


@pytest.fixture(scope="module")
def models(two_way: Path) -> Models:
    return Models(["demo", str(two_way)], device="cpu")


@pytest.fixture
def client(models: Models) -> TestClient:
    return TestClient(create_app(models, max_bytes=200_000, max_pixels=100 * 100), headers=UPLOAD)


@pytest.fixture
def form_client(models: Models) -> TestClient:
    """As ``client``, with no Content-Type of its own: each request's body sets it (a
    multipart form's boundary)."""
    return TestClient(create_app(models, max_bytes=200_000, max_pixels=100 * 100))


def test_models_lists_only_those_named(client: TestClient, two_way: Path) -> None:
    info = client.get("/api/models").json()
    assert [m["name"] for m in info["models"]] == ["demo", str(two_way)]
    assert info["models"][1]["directions"] == ["AtoB", "BtoA"]
    assert info["max_pixels"] == 100 * 100 and info["runs"] is False
    page = client.get("/")
    assert page.status_code == 200 and "getUserMedia" in client.get("/static/app.js").text


def test_translate_returns_png_at_input_size(client: TestClient) -> None:
    response = client.post("/api/translate?model=demo&name=x.jpg", content=png(30, 22, fmt="JPEG"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    out = Image.open(io.BytesIO(response.content))
    assert out.size == (30, 22) and response.headers["x-size"] == "30x22"
    # tiled: same size, close to the untiled output for a per-pixel-ish U-Net
    tiled = client.post("/api/translate?model=demo&name=x.jpg&tile=32", content=png(60, 44))
    assert tiled.status_code == 200 and Image.open(io.BytesIO(tiled.content)).size == (60, 44)


def test_an_upload_that_would_not_fit_in_free_memory_is_refused_naming_a_tile(
    two_way: Path, any_cpu, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The converter's memory estimate guards the server: an image whose pass needs more than
    the memory free now is a 422 naming a tile size that fits, not a server the OS kills; and
    the tile it names is then accepted, whatever precision `auto` picked on this CPU."""
    served = Models([str(two_way)], device="cpu")
    model = f"/api/translate?model={two_way}&name=big.png"
    per_pixel = served.budget(str(two_way), "AtoB", None).bytes_per_pixel
    tiling = 256 * 256 * TILED_BYTES_PER_PIXEL
    # Half of it is one 96x96 pass beside a tiled 256x256 image's whole-image buffers.
    free = 2 * (per_pixel * 96 * 96 + tiling)
    monkeypatch.setattr("translate.apps.serve.models.free_memory", lambda device: free)
    client = TestClient(create_app(served), headers=UPLOAD)
    refused = client.post(model, content=png(256, 256))
    assert refused.status_code == 422, refused.text
    message = refused.json()["error"]
    assert message.startswith("big.png: 256x256 needs more memory"), message
    side = int(re.search(r"tile size of (\d+) or less", message)[1])
    assert side == 64  # the largest multiple of 64 whose pass fits
    for tile in (side, side // 2):
        tiled = client.post(f"{model}&tile={tile}", content=png(256, 256))
        assert tiled.status_code == 200, tiled.text
    fits = client.post(model.replace("big", "small"), content=png(90, 90))
    assert fits.status_code == 200, fits.text
    # With no room for the whole-image buffers beside a pass, no tile is offered.
    monkeypatch.setattr("translate.apps.serve.models.free_memory", lambda device: tiling)
    hopeless = client.post(model, content=png(256, 256))
    assert hopeless.status_code == 422 and "even 32-pixel tiles do not fit" in hopeless.text


def test_direction_picks_the_generator(client: TestClient, two_way: Path) -> None:
    body = png(16, 16)
    outputs = {}
    for direction in ("AtoB", "BtoA"):
        query = {"model": str(two_way), "name": "a.png", "direction": direction}
        response = client.post("/api/translate", params=query, content=body)
        assert response.status_code == 200, response.text
        outputs[direction] = np.asarray(Image.open(io.BytesIO(response.content)))
    assert not np.array_equal(outputs["AtoB"], outputs["BtoA"])
    bad = client.post("/api/translate?model=demo&name=a.png&direction=BtoA", content=body)
    assert bad.status_code == 400 and "'BtoA' is not in this model" in bad.json()["error"]


def test_bad_files_get_the_converters_reasons(client: TestClient, tmp_path: Path) -> None:
    def error(name: str, body: bytes) -> tuple[int, str]:
        response = client.post(
            "/api/translate", params={"model": "demo", "name": name}, content=body
        )
        return response.status_code, response.json()["error"]

    status, message = error("broken.png", b"not an image at all")
    assert status == 422 and message.startswith("broken.png: not a readable image")
    assert "/tmp" not in message and "\n" not in message
    status, message = error("notes.txt", png(8, 8))
    assert status == 422 and message == (
        "notes.txt: not an image file "
        "(expected one of .jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp, .gif)"
    )
    status, message = error("big.png", png(101, 100))
    assert status == 422 and "image too large (101x100 = 10,100 pixels" in message
    status, message = error("huge.png", b"\0" * 200_001)
    assert status == 413 and "200,000 bytes" in message
    # a name is only a name: a path in it reaches nothing
    ok = client.post(
        "/api/translate", params={"model": "demo", "name": "../../x.png"}, content=png(8, 8)
    )
    assert ok.status_code == 200


def test_models_and_paths_from_requests_are_refused(client: TestClient, two_way: Path) -> None:
    other = two_way.parent / "other.safetensors"
    other.write_bytes(two_way.read_bytes())
    for model in (str(other), "../demo", "demo2"):
        response = client.post(
            "/api/translate", params={"model": model, "name": "a.png"}, content=png(8, 8)
        )
        assert response.status_code == 400 and "is not served here" in response.json()["error"]
    bad_tile = client.post("/api/translate?model=demo&name=a.png&tile=x", content=png(8, 8))
    assert bad_tile.status_code == 400 and "tile" in bad_tile.json()["error"]
    assert (
        client.post("/api/translate?model=demo&name=a.png&tile=8", content=png(8, 8)).status_code
        == 400
    )


def test_an_unreadable_upload_is_named_by_its_name_not_a_file_handle(client: TestClient) -> None:
    response = client.post("/api/translate?model=demo&name=photo.png", content=b"not an image")
    message = response.json()["error"]
    assert response.status_code == 422 and message.startswith("photo.png: not a readable image")
    assert "<_io" not in message and "name=" not in message and "\n" not in message


def test_a_long_upload_name_keeps_its_suffix(client: TestClient) -> None:
    long = "a" * 250 + ".png"
    response = client.post("/api/translate", params={"model": "demo", "name": long}, content=b"x")
    shown = response.json()["error"].split(": ")[0]
    assert shown == "a" * 196 + ".png"  # cut to MAX_NAME, still a .png: read, not refused
    assert "not a readable image" in response.json()["error"]
    ok = client.post("/api/translate", params={"model": "demo", "name": long}, content=png(8, 8))
    assert ok.status_code == 200, ok.text
    text = client.post("/api/translate", params={"model": "demo", "name": "b" * 250 + ".txt"})
    assert "not an image file" in text.json()["error"]


def test_a_missing_parameter_gets_the_pages_one_line_error(client: TestClient) -> None:
    response = client.post("/api/translate?model=demo", content=png(8, 8))
    assert response.status_code == 400 and list(response.json()) == ["error"]
    message = response.json()["error"]
    assert message.startswith("query parameter 'name': field required") and "\n" not in message
    assert "name=photo.png" in message  # the fix, not only the fault


def test_a_multipart_upload_is_translated_as_the_raw_body_is(form_client: TestClient) -> None:
    body = png(30, 22, seed=3)
    raw = form_client.post("/api/translate?model=demo&name=x.png", content=body, headers=UPLOAD)
    assert raw.status_code == 200, raw.text
    # curl -F file=@x.png: the part's file name stands in for ?name=
    form = form_client.post(
        "/api/translate?model=demo", files={"file": ("x.png", body, "image/png")}
    )
    assert form.status_code == 200, form.text
    assert form.content == raw.content and form.headers["x-size"] == "30x22"
    # any field name; the converter's checks see the part's file name
    text = form_client.post("/api/translate?model=demo", files={"image": ("notes.txt", body)})
    assert text.status_code == 422 and text.json()["error"].startswith("notes.txt: not an image")
    # ?name= wins over the part's file name
    named = form_client.post(
        "/api/translate?model=demo&name=y.png", files={"image": ("notes.txt", body)}
    )
    assert named.status_code == 200 and named.content == raw.content


def test_a_multipart_upload_without_one_image_file_gets_a_one_line_4xx(
    form_client: TestClient,
) -> None:
    url = "/api/translate?model=demo"
    # curl -F file=<x.png (the file's bytes as a text field, no file part)
    fields = form_client.post(url, data={"file": "not a file", "name": "x.png"})
    assert fields.status_code == 415  # an urlencoded form: no file can be in it
    no_file = form_client.post(url, files={"file": (None, "x.png")})  # a text part only
    assert no_file.status_code == 400
    assert no_file.json()["error"] == (
        "multipart upload without a file part: send the image as a file part, "
        "e.g. curl -F file=@photo.jpg"
    )
    two = form_client.post(url, files=[("a", ("a.png", png(8, 8))), ("b", ("b.png", png(8, 8)))])
    assert two.status_code == 400 and "Too many files" in two.json()["error"]
    unbounded = form_client.post(
        url, content=png(8, 8), headers={"content-type": "multipart/form-data"}
    )
    assert unbounded.status_code == 400 and "boundary" in unbounded.json()["error"]
    for response in (no_file, two, unbounded):
        assert "\n" not in response.json()["error"]


def test_a_multipart_upload_over_the_limit_is_refused(models: Models) -> None:
    with TestClient(create_app(models, max_bytes=1000)) as small:
        big = small.post("/api/translate?model=demo", files={"file": ("a.png", png(64, 64))})
    assert big.status_code == 413 and "1,000 bytes" in big.json()["error"]


def test_cross_site_requests_are_refused(client: TestClient) -> None:
    """A page on another site may POST forms and open sockets to a loopback server; the
    Origin the browser sends and the Content-Type of the upload tell them apart."""
    url = "/api/translate?model=demo&name=a.png"
    evil = client.post(url, content=png(8, 8), headers={"origin": "http://evil.com"})
    assert evil.status_code == 403 and "Origin http://evil.com" in evil.json()["error"]
    null = client.post(url, content=png(8, 8), headers={"origin": "null"})
    assert null.status_code == 403
    own = client.post(url, content=png(8, 8), headers={"origin": "http://testserver"})
    assert own.status_code == 200, own.text
    for kind in ("text/plain", "application/x-www-form-urlencoded", ""):
        form = client.post(url, content=png(8, 8), headers={"content-type": kind})
        assert form.status_code == 415, kind
        assert form.json()["error"].startswith(f"Content-Type {kind or '(none)'}: send the image")
        assert "curl -F file=@photo.jpg" in form.json()["error"]
    image = client.post(url, content=png(8, 8), headers={"content-type": "image/png"})
    assert image.status_code == 200
    # a form's file upload is taken, so only its Origin keeps another site's form out
    files = {"file": ("a.png", png(8, 8), "image/png")}
    evil_form = client.post(
        url,
        files=files,
        headers={"origin": "http://evil.com", "content-type": "multipart/form-data"},
    )
    assert evil_form.status_code == 403
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect(  # noqa: PT012
            "/api/live?model=demo", headers={"origin": "http://evil.com"}
        ) as ws,
    ):
        ws.send_bytes(frame(1.0))
        ws.receive_bytes()
    with client.websocket_connect(
        "/api/live?model=demo", headers={"origin": "http://testserver"}
    ) as ws:
        ws.send_bytes(frame(2.0))
        assert FRAME_HEADER.unpack_from(ws.receive_bytes())[0] == 2.0


def test_favicon(client: TestClient) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert 'href="static/favicon.svg"' in client.get("/").text
    assert client.get("/static/favicon.svg").content == icon.content


def test_models_are_shown_by_name_with_what_they_do(tmp_path: Path, two_way: Path) -> None:
    run = tmp_path / "runs" / "maps"
    run.mkdir(parents=True)
    (run / "generator_latest.safetensors").write_bytes(two_way.read_bytes())
    info = {m.name: m for m in Models(["demo", str(run) + "/", str(two_way)], "cpu").info()}
    assert [m.label for m in info.values()] == ["demo", "maps", "cycle.safetensors"]
    demo = load_model("demo").training
    assert info["demo"].about.startswith(DESCRIPTIONS["demo"] + "; " + demo["model"])
    assert f"for {demo['steps']:,} steps" in info["demo"].about
    assert labels(["a/g.safetensors", "b/g.safetensors", "c/h.safetensors"]) == {
        "a/g.safetensors": "a/g.safetensors",
        "b/g.safetensors": "b/g.safetensors",
        "c/h.safetensors": "h.safetensors",
    }


def test_the_bundled_samples_are_demos_examples(
    client: TestClient, two_way: Path, models: Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = {m["name"]: m["examples"] for m in client.get("/api/models").json()["models"]}
    assert listed["demo"] == [p.name for p in list_images(SAMPLES)] and listed["demo"]
    assert listed[str(two_way)] == []
    first = SAMPLES / listed["demo"][0]
    got = client.get("/api/example", params={"model": "demo", "name": first.name})
    assert got.status_code == 200 and got.content == first.read_bytes()
    for model, name in (("demo", "README.md"), ("demo", "../samples/" + first.name),
                        (str(two_way), first.name)):  # fmt: skip
        refused = client.get("/api/example", params={"model": model, "name": name})
        assert refused.status_code == 404 and "has no example" in refused.json()["error"]
    # an installed wheel has no datasets/samples: no examples, so the page shows none
    monkeypatch.setitem(EXAMPLES, "demo", Path(__file__).parent / "no_such_folder")
    assert models.info()[0].examples == []


def test_one_model_copy_shared_by_translators(models: Models, two_way: Path) -> None:
    a = models.translator(str(two_way), "AtoB", None)
    b = models.translator(str(two_way), "AtoB", 64)
    assert a is not b and a.generator is b.generator
    assert models.translator(str(two_way), "AtoB", 64) is b
    for tile in range(100, 100 + 2 * TRANSLATORS_KEPT):  # tiles come from requests: kept bounded
        models.translator("demo", "AtoB", tile)
    assert len(models._translators) == TRANSLATORS_KEPT


def test_full_queue_answers_busy(models: Models, monkeypatch: pytest.MonkeyPatch) -> None:
    started, release = threading.Event(), threading.Event()
    real = app_module._translate_upload

    def slow(*args: object) -> tuple[bytes, tuple[int, int]]:
        started.set()
        release.wait(30)
        return real(*args)

    monkeypatch.setattr(app_module, "_translate_upload", slow)
    gate = Gate(workers=1, queue=1)
    app = create_app(models, gate=gate)

    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=UPLOAD
        ) as http:
            post = lambda: http.post("/api/translate?model=demo&name=a.png", content=png(8, 8))  # noqa: E731
            first, second = asyncio.create_task(post()), asyncio.create_task(post())
            while gate.pending < 2:  # one running, one waiting: the line is full
                await asyncio.sleep(0.01)
            third = await post()
            assert third.headers["retry-after"] == "1" and "busy" in third.json()["error"]
            release.set()
            return [third.status_code, (await first).status_code, (await second).status_code]

    assert asyncio.run(scenario()) == [503, 200, 200]
    assert gate.pending == 0


def test_gate_refuses_beyond_capacity() -> None:
    async def scenario() -> None:
        gate = Gate(workers=1, queue=0)
        release = threading.Event()
        running = asyncio.create_task(gate.run(release.wait, 30))
        while gate.pending < 1:
            await asyncio.sleep(0.01)
        with pytest.raises(Busy):
            await gate.run(int, 1)
        release.set()
        assert await running is True
        assert await gate.run(int, "7") == 7

    asyncio.run(scenario())


def test_token_guards_every_request(models: Models) -> None:
    app = create_app(models, token="s3cret", trusted_hosts=["testserver"])
    client = TestClient(app)
    assert client.get("/api/models").status_code == 401
    assert client.get("/?token=wrong").status_code == 401
    assert client.get("/static/app.js").status_code == 401
    with pytest.raises(Exception), client.websocket_connect("/api/live?model=demo") as ws:  # noqa: B017
        ws.receive_bytes()
    assert client.get("/api/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    page = client.get("/?token=s3cret")  # the printed URL: sets the cookie for the page
    assert page.status_code == 200 and "HttpOnly" in page.headers["set-cookie"]
    assert client.get("/api/models").status_code == 200  # the cookie now
    other_host = TestClient(app, base_url="http://evil.example")
    assert other_host.get("/api/models?token=s3cret").status_code == 400


def test_two_servers_on_one_host_keep_their_own_token_cookies(models: Models) -> None:
    """A browser sends every cookie of 127.0.0.1 to both ports."""
    cookies = {}
    for port, token in ((7860, "first"), (7861, "second")):
        app = create_app(models, token=token, trusted_hosts=["127.0.0.1"])
        page = TestClient(app, base_url=f"http://127.0.0.1:{port}").get(f"/?token={token}")
        name, value = page.headers["set-cookie"].split(";")[0].split("=")
        cookies[name] = value
    assert len(cookies) == 2
    header = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    for port, token in ((7860, "first"), (7861, "second")):
        app = create_app(models, token=token, trusted_hosts=["127.0.0.1"])
        client = TestClient(app, base_url=f"http://127.0.0.1:{port}")
        assert client.get("/api/models", headers=header).status_code == 200, port


def frame(sent_at: float, width: int = 24, height: int = 16) -> bytes:
    return FRAME_HEADER.pack(sent_at) + png(width, height, fmt="JPEG")


def test_live_frames_come_back_translated(client: TestClient) -> None:
    with client.websocket_connect("/api/live?model=demo") as ws:
        ws.send_bytes(frame(12.5))
        reply = ws.receive_bytes()
        assert struct.unpack_from("<d", reply)[0] == 12.5
        assert Image.open(io.BytesIO(reply[FRAME_HEADER.size :])).size == (24, 16)
        stats = ws.receive_json()
        assert stats["dropped"] == 0 and stats["model_ms"] > 0
        ws.send_bytes(FRAME_HEADER.pack(1.0) + b"garbage")
        assert "frame: not a readable image" in ws.receive_json()["error"]


def test_a_live_frame_shorter_than_its_header_keeps_the_connection(client: TestClient) -> None:
    with client.websocket_connect("/api/live?model=demo") as ws:
        ws.send_bytes(b"abc")
        assert ws.receive_json()["error"].startswith("frame: 3 bytes, shorter than the 8-byte")
        ws.send_bytes(frame(4.0))
        assert FRAME_HEADER.unpack_from(ws.receive_bytes())[0] == 4.0


def test_live_drops_frames_while_the_model_is_busy(
    models: Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = threading.Event(), threading.Event()
    real = app_module._translate_frame

    def slow(*args: object) -> bytes:
        started.set()
        release.wait(30)
        return real(*args)

    monkeypatch.setattr(app_module, "_translate_frame", slow)
    client = TestClient(create_app(models))
    with client.websocket_connect("/api/live?model=demo") as ws:
        ws.send_bytes(frame(1))
        assert started.wait(30)
        for i in range(2, 6):  # 2, 3 and 4 are replaced by newer ones while 1 runs
            ws.send_bytes(frame(i))
        assert [ws.receive_json()["dropped"] for _ in range(3)] == [1, 2, 3]
        release.set()
        got = []
        while len(got) < 2:
            message = ws.receive()
            if message.get("bytes"):
                got.append(FRAME_HEADER.unpack_from(message["bytes"])[0])
        assert got == [1, 5]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "runs" / "exp1"
    (run / "samples").mkdir(parents=True)
    (run / "config.yaml").write_text("model: pix2pix\n")
    lines = [
        {"step": 1, "epoch": 1, "G_GAN": 0.7, "G_L1": 30.0, "lr_g": 0.0002},
        {"step": 2, "epoch": 1, "G_GAN": float("nan"), "G_L1": 20.0, "warnings": ["collapse"]},
        {"step": 2, "epoch": 1, "val_L1": 0.3, "diversity_ratio": 0.5},
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    for step in (1, 2):
        Image.new("RGB", (8, 8)).save(run / "samples" / f"epoch001_step{step:07d}.png")
    (run / "secret.png").write_bytes(b"x")
    (tmp_path / "runs" / "not_a_run").mkdir()
    return tmp_path / "runs"


def test_runs_api(models: Models, run_dir: Path) -> None:
    client = TestClient(create_app(models, Runs(run_dir)))
    assert client.get("/api/models").json()["runs"] is True
    runs = client.get("/api/runs").json()["runs"]
    assert [(r["name"], r["step"]) for r in runs] == [("exp1", 2)]
    detail = client.get("/api/runs/exp1").json()
    assert detail["config"] == "model: pix2pix\n"
    assert detail["samples"] == ["epoch001_step0000002.png", "epoch001_step0000001.png"]
    metrics = client.get("/api/runs/exp1/metrics").json()
    assert metrics["next"] == 3 and metrics["records"][1]["G_GAN"] is None
    assert metrics["records"][1]["warnings"] == ["collapse"]
    assert metrics["panels"] == {
        "G_GAN": "losses",
        "G_L1": "losses",
        "lr_g": None,
        "val_L1": "validation",
        "diversity_ratio": "monitoring",
    }
    # new lines while training writes: only those come, a half-written one waits
    with open(run_dir / "exp1" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 3, "epoch": 1, "G_L1": 10.0}) + '\n{"step": 4, "G')
    later = client.get("/api/runs/exp1/metrics?since=3").json()
    assert [r["step"] for r in later["records"]] == [3] and later["next"] == 4
    sample = client.get("/api/runs/exp1/samples/epoch001_step0000001.png")
    assert sample.status_code == 200 and sample.headers["content-type"] == "image/png"
    for path in (
        "/api/runs/exp1/samples/..%2Fsecret.png",
        "/api/runs/exp1/samples/secret.png",
        "/api/runs/not_a_run",
        "/api/runs/..%2F..%2Fetc",
    ):
        response = client.get(path)
        assert response.status_code == 404, path


def test_a_damaged_run_is_listed_with_its_file_named_and_the_others_as_usual(
    models: Models, run_dir: Path
) -> None:
    broken, bad_config = run_dir / "broken", run_dir / "bad_config"
    broken.mkdir()
    (broken / "metrics.jsonl").write_bytes(b'{"step": 1, "epoch": 1}\n{"step": 2, "G\xff\xfe"}\n')
    bad_config.mkdir()
    (bad_config / "config.yaml").write_bytes(b"model: pix2pix\nname: caf\xe9\n")
    client = TestClient(create_app(models, Runs(run_dir)))
    listed = client.get("/api/runs")
    assert listed.status_code == 200
    runs = {r["name"]: r for r in listed.json()["runs"]}
    assert (runs["exp1"]["step"], runs["exp1"]["error"]) == (2, None)
    assert runs["bad_config"]["error"] is None
    damaged = f"{broken / 'metrics.jsonl'}:2: damaged: byte 0xff at offset 14 is not UTF-8"
    assert runs["broken"]["error"] == damaged
    metrics = client.get("/api/runs/broken/metrics").json()
    assert (metrics["records"], metrics["error"]) == ([], damaged)
    detail = client.get("/api/runs/bad_config")
    assert detail.status_code == 200 and detail.json()["config"] == ""
    damaged = f"{bad_config / 'config.yaml'}: damaged: byte 0xe9 at offset 24 is not UTF-8"
    assert detail.json()["error"] == damaged
    assert client.get("/api/runs/exp1").json()["error"] is None


def test_an_unpaired_run_says_it_has_no_scores(models: Models, run_dir: Path) -> None:
    cycle = run_dir / "cycle"
    cycle.mkdir()
    (cycle / "config.yaml").write_text("model: cyclegan\n")
    client = TestClient(create_app(models, Runs(run_dir)))
    assert client.get("/api/runs/cycle").json()["unpaired"] is True
    assert client.get("/api/runs/exp1").json()["unpaired"] is False


def test_cli_prints_one_url_and_needs_a_token_beyond_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvicorn

    seen = {}

    def fake_run(self: uvicorn.Server, sockets: list) -> None:
        seen["port"] = sockets[0].getsockname()[1]
        seen["app"] = self.config.app

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    runner = CliRunner()
    result = runner.invoke(main, ["serve", "demo", "--port", "0", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert result.output == f"http://127.0.0.1:{seen['port']}/\n"
    result = runner.invoke(main, ["serve", "demo", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 0, result.output
    url = result.output.strip()
    assert url.startswith(f"http://0.0.0.0:{seen['port']}/?token=") and len(url.split("=")[1]) > 16
    guarded = TestClient(seen["app"])
    assert guarded.get("/api/models").status_code == 401
    assert guarded.get("/api/models?token=" + url.split("=")[1]).status_code == 200
    result = runner.invoke(main, ["serve", "missing.safetensors", "--port", "0"])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "missing.safetensors: no such file" in result.output
    result = runner.invoke(main, ["serve", "demo", "--device", "tpu", "--port", "0"])
    assert result.exit_code == 1 and "device 'tpu'" in result.output


def test_serve_runs_every_translator_at_the_precision_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import uvicorn

    from translate.apps.serve import models as models_module

    built = []

    class Recorded(Models):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets: None)
    monkeypatch.setattr(models_module, "Models", Recorded)
    runner = CliRunner()
    command = ["serve", "demo", "--port", "0", "--device", "cpu"]
    result = runner.invoke(main, [*command, "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    # a request's own options come on top of the command's
    assert built[-1].translator("demo", "AtoB", tile=64).precision.name == "fp32"
    result = runner.invoke(main, [*command, "--calibrate", str(tmp_path)])
    assert result.exit_code == 2 and "Error: --calibrate is for --precision int8" in result.output


def test_a_bad_tls_file_is_one_line_before_any_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets: None)
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    runner = CliRunner()
    result = runner.invoke(
        main, ["serve", "demo", "--port", "0", "--ssl-certfile", str(tmp_path / "bad.pem")]
    )
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert f"--ssl-certfile {tmp_path / 'bad.pem'}: cannot load the certificate" in result.output
    if shutil.which("openssl") is None:
        return
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"],
        capture_output=True,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    tls = ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    result = runner.invoke(main, ["serve", "demo", "--port", "0", "--device", "cpu", *tls])
    assert result.exit_code == 0 and result.output.startswith("https://127.0.0.1:"), result.output


def test_is_loopback() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "192.168.1.5", "::", "example.com"]))


def test_small_load_loses_nothing(models: Models, monkeypatch: pytest.MonkeyPatch) -> None:
    """tools/load_test.py in small: concurrent clients within the queue all get answers."""
    spec = importlib.util.spec_from_file_location(
        "load_test", Path(__file__).resolve().parent.parent / "tools" / "load_test.py"
    )
    load_test = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "load_test", load_test)  # its dataclass looks itself up
    spec.loader.exec_module(load_test)
    with BackgroundServer(create_app(models, gate=Gate(workers=1, queue=2))) as url:
        result = asyncio.run(load_test.run_load(url, png(16, 16), clients=3, requests=3))
    assert result.statuses == {200: 9} and result.lost == 0 and result.failed == 0
    assert len(result.latencies) == 9 and "p95" in result.report()


def test_every_api_route_is_documented_with_an_example(models: Models, run_dir: Path) -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "serve.md").read_text()
    app = create_app(models, Runs(run_dir))
    routes = [r.path for r in app.routes if getattr(r, "path", "").startswith("/api/")]
    assert len(routes) == 10
    assert [path for path in routes if f"`{path}" not in page and f" {path}" not in page] == []
    # the upload a user tries first, and the raw body, each with a command to copy
    assert 'curl -F file=@photo.jpg "http://127.0.0.1:7860/api/translate?model=demo"' in page
    assert "curl --data-binary @photo.jpg" in page
