"""`translate serve`: load the models, bind, print the one URL to open, serve until Ctrl-C."""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path
from typing import Any

import click

from translate.core.errors import user_errors
from translate.inference.options import OptionError, TranslatorOptions, click_options, split

LOOPBACK_NAMES = ("localhost",)
# The translator options the command sets for every model; a request sets its own on top.
SERVED_OPTIONS = ("device", "precision", "backend", "compile", "calibrate", "min_psnr")


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.argument("models", nargs=-1, required=True)
@click.option(
    "--runs",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Watch the training runs in this folder (a run folder or a folder of runs).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=7860, show_default=True)
@click.option(
    "--token",
    default=None,
    help="Required on every request. Default: none on loopback, a random one otherwise.",
)
@click_options(TranslatorOptions, only=SERVED_OPTIONS)
@click.option(
    "--queue",
    type=click.IntRange(min=0),
    default=8,
    show_default=True,
    help="Translations that may wait for the model; more are answered 503 busy.",
)
@click.option(
    "--max-upload-mb",
    type=click.FloatRange(min=0, min_open=True),
    default=50,
    show_default=True,
    help="Largest image file accepted.",
)
@click.option("--ssl-certfile", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option(
    "--ssl-keyfile",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Serve HTTPS (browsers give the camera only to localhost or HTTPS pages).",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=None,
    help="Largest image accepted, in pixels (default 4096 x 4096).",
)
def serve(
    models: tuple[str, ...],
    runs: Path | None,
    host: str,
    port: int,
    token: str | None,
    queue: int,
    max_upload_mb: float,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
    max_pixels: int | None,
    **translating: Any,
) -> None:
    """Serve a web page to try MODELS on images and the camera, and to watch training.

    MODELS are what `translate convert` takes: generator files, run directories, bundled
    names (demo). Only these are served. It listens on 127.0.0.1 unless --host says
    otherwise; any other address needs the token, which the printed URL carries.
    """
    try:
        from translate.apps.serve.app import MAX_PIXELS, create_app
        from translate.apps.serve.models import Gate, Models
        from translate.apps.serve.runs import Runs
        from translate.apps.serve.server import bind, check_tls, make_server, url
    except ImportError as exc:
        raise click.ClickException(
            f"translate serve needs the serve extra ({exc.name} is missing): "
            'pip install -e ".[serve]"'
        ) from exc

    try:
        split(translating, TranslatorOptions)
    except OptionError as exc:
        raise click.UsageError(exc.for_cli()) from exc
    loopback = is_loopback(host)
    if token is None and not loopback:
        token = secrets.token_urlsafe(16)
    with user_errors():
        if ssl_certfile is not None:
            check_tls(ssl_certfile, ssl_keyfile)
        served = Models(models, **translating)
        watched = Runs(runs) if runs is not None else None
    app = create_app(
        served,
        watched,
        token=token,
        trusted_hosts=["127.0.0.1", "localhost", "::1", "[::1]"] if loopback else None,
        max_bytes=int(max_upload_mb * 1024 * 1024),
        max_pixels=max_pixels or MAX_PIXELS,
        gate=Gate(workers=1, queue=queue),
    )
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise click.ClickException(f"--host {host} --port {port}: cannot listen ({exc})") from exc
    scheme = "https" if ssl_certfile else "http"
    click.echo(url(host, sock.getsockname()[1], token, scheme))
    server = make_server(app, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
