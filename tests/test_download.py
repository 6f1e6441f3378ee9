"""Public datasets and pretrained models by name, against a local HTTP server on 127.0.0.1
that serves archives and a reference-layout checkpoint made here (never the network)."""

from __future__ import annotations

import io
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from translate.cli import main
from translate.data.images import read_image, write_image
from translate.data.layout import find_layout
from translate.models.loading import load_model
from translate.networks import build_generator


class Server:
    """Serves ``files`` (URL path -> bytes) with HTTP Range support; a path listed in
    ``cut`` sends half of its body to the first request and then drops the connection."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                outer.requests.append((self.path, self.headers.get("Range")))
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].rstrip("-"))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if self.path in outer.cut:
                    outer.cut.discard(self.path)
                    self.wfile.write(body[start : len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        # bounded: it stops by itself even if a test never reaches its teardown
        self.timer = threading.Timer(120, self.httpd.shutdown)

    def __enter__(self) -> Server:
        self.thread.start()
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.timer.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def server(own_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    with Server() as srv:
        monkeypatch.setenv("TRANSLATE_MIRROR", srv.url)
        yield srv


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _pair(seed: int) -> bytes:
    # incompressible noise, so half the archive is half the bytes
    return _png(np.random.default_rng(seed).integers(0, 256, (16, 32, 3), dtype=np.uint8))


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_interrupted_dataset_download_resumes_and_is_laid_out(
    server: Server, tmp_path: Path
) -> None:
    path = "/pix2pix/datasets/facades.tar.gz"
    server.files[path] = _tar_gz(
        {f"facades/{split}/{i}.png": _pair(i) for split in ("train", "val") for i in range(3)}
    )
    server.cut.add(path)
    root = tmp_path / "datasets"
    code, output = _run("prepare", "download", "facades", "--root", str(root), "--no-progress")
    half = len(server.files[path]) // 2
    assert (
        code == 1 and f"broke off after {half} of" in output and "run the command again" in output
    )
    part = tmp_path / "home" / "downloads" / "facades.tar.gz.part"
    assert part.stat().st_size == half
    code, output = _run("prepare", "download", "facades", "--root", str(root), "--no-progress")
    assert code == 0, output
    assert server.requests[-1] == (path, f"bytes={half}-")
    layout = find_layout(root / "facades", "paired")
    assert layout.name == "aligned" and list(layout.splits) == ["train", "val"]
    assert read_image(root / "facades" / "val" / "2.png").shape == (16, 32, 3)
    assert not list((tmp_path / "home" / "downloads").iterdir())  # the archive is cleaned up


def test_cyclegan_dataset_comes_as_unpaired_folders(server: Server, tmp_path: Path) -> None:
    members = {
        f"maps/{s}{d}/{i}.png": _pair(i) for s in ("train", "test") for d in "AB" for i in (0, 1)
    }
    server.files["/cyclegan/datasets/maps.zip"] = _zip({**members, "__MACOSX/x": b"junk"})
    code, output = _run("prepare", "download", "maps", "--unpaired", "--root", str(tmp_path))
    assert code == 0, output
    layout = find_layout(tmp_path / "maps", "unpaired")
    assert (
        list(layout.splits) == ["test", "train"] and not (tmp_path / "maps" / "__MACOSX").exists()
    )


def test_corrupt_archive_is_refused_and_deleted(server: Server, tmp_path: Path) -> None:
    good = _tar_gz({"facades/train/0.png": _pair(0)})
    server.files["/pix2pix/datasets/facades.tar.gz"] = good[:-40] + bytes(40)
    code, output = _run("prepare", "download", "facades", "--root", str(tmp_path / "d"))
    assert code == 1 and "corrupt archive" in output and "download it afresh" in output
    assert not (tmp_path / "home" / "downloads" / "facades.tar.gz").exists()
    assert not (tmp_path / "d" / "facades").exists()


@pytest.mark.parametrize("pack", [_tar_gz, _zip])
def test_archive_with_paths_outside_the_target_is_refused(
    server: Server, tmp_path: Path, pack
) -> None:
    archive = pack({"facades/train/0.png": _pair(0), "../../evil.txt": b"owned"})
    suffix = "tar.gz" if pack is _tar_gz else "zip"
    kind = "pix2pix" if pack is _tar_gz else "cyclegan"
    name = "facades" if pack is _tar_gz else "horse2zebra"
    server.files[f"/{kind}/datasets/{name}.{suffix}"] = archive
    root = tmp_path / "a" / "b"
    code, output = _run("prepare", "download", name, "--root", str(root))
    assert code == 1 and "'../../evil.txt': it points outside the folder" in output
    assert not list(tmp_path.rglob("evil.txt"))


def test_offline_names_the_url_and_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, own_home: Path
) -> None:
    monkeypatch.setenv("TRANSLATE_MIRROR", "http://127.0.0.1:9")  # discard port: refused
    code, output = _run("prepare", "download", "horse2zebra", "--root", str(tmp_path))
    assert code == 1
    assert "cannot reach http://127.0.0.1:9/cyclegan/datasets/horse2zebra.zip" in output
    assert f"put it at {own_home / 'downloads' / 'horse2zebra.zip'}" in output
    write_image(tmp_path / "in" / "x.png", np.zeros((8, 8, 3), np.uint8))
    code, output = _run("convert", "style_monet", str(tmp_path / "in"), str(tmp_path / "out"))
    assert code == 1 and "/cyclegan/pretrained_models/style_monet.pth" in output
    assert str(tmp_path / "home" / "models" / "cyclegan" / "style_monet.pth") in output


def _reference_checkpoint(name: str, **options: object) -> bytes:
    net = build_generator(name, **options)
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    return buffer.getvalue()


def test_pretrained_model_by_name_is_fetched_once(server: Server, tmp_path: Path) -> None:
    server.files["/cyclegan/pretrained_models/horse2zebra.pth"] = _reference_checkpoint(
        "resnet_9blocks", ngf=4, n_blocks=2, norm="instance"
    )
    write_image(tmp_path / "photos" / "h.png", np.full((16, 16, 3), 99, np.uint8))
    for _ in range(2):
        code, output = _run(
            "convert", "horse2zebra", str(tmp_path / "photos"), str(tmp_path / "out"),
            "--device", "cpu", "--no-progress", "--overwrite",
        )  # fmt: skip
        assert code == 0, output
    assert read_image(tmp_path / "out" / "h.png").shape == (16, 16, 3)
    assert [p for p, _ in server.requests] == ["/cyclegan/pretrained_models/horse2zebra.pth"]
    code, output = _run("models")
    lines = {line.split()[0]: line for line in output.splitlines()}
    assert "downloaded" in lines["horse2zebra"] and "bundled" in lines["demo"]
    assert "/pix2pix/models-pytorch/sat2map.pth" in lines["pix2pix_sat2map"]
    # One name per model: the pix2pix_ prefix only where CycleGAN has the same name.
    assert "/pix2pix/models-pytorch/edges2shoes.pth" in lines["edges2shoes"]
    assert "pix2pix_edges2shoes" not in lines and "pix2pix_day2night" not in lines
    files = [line.split()[-1] for line in output.splitlines() if "downloaded" not in line]
    assert len(files) == len(set(files)), "a checkpoint listed under two names"


def test_pix2pix_pretrained_models_load_from_their_folder(server: Server) -> None:
    server.files["/pix2pix/models-pytorch/day2night.pth"] = _reference_checkpoint(
        "unet_256", ngf=4, num_downs=5, norm="batch"
    )
    model = load_model("day2night")
    assert model.specs["AtoB"].name == "unet_256" and model.specs["AtoB"].options["ngf"] == 4
