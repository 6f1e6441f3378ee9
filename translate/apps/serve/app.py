"""The web app: the page, the translation API, the live-camera socket and the run watcher.

The page (``static/``) talks to the JSON/binary API below; nothing else is served. Images
arrive as request bodies, never as paths, and are read by the converter's own reader so a
bad file gets the converter's one-line reason.
"""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import struct
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from translate.apps.serve.models import MIN_TILE, Busy, Gate, Models
from translate.apps.serve.runs import RunNotFound, Runs
from translate.conversion.convert import error_reason
from translate.core.extras import MissingExtra, needs_extra
from translate.data.images import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    image_to_array,
    is_image_path,
    label_array,
    png_bytes,
    read_image,
    unreadable_reason,
)
from translate.inference.memory import MemoryBudget
from translate.inference.options import (
    OptionError,
    TranslatorOptions,
    query_values,
)
from translate.inference.translator import Translator

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 4096 * 4096
# Live frames are small JPEGs from the page's canvas; anything bigger is not one of ours.
MAX_FRAME_BYTES = 2 * 1024 * 1024
MAX_FRAME_PIXELS = 1280 * 1280
LIVE_QUALITY = 85
# Translations go back as PNG at zlib's fastest level (lossless; PIL's default level 6 took
# 4x as long on a 256 px image, for 13% fewer bytes), or as JPEG, which the paint tab asks
# for as it redraws at each stroke: a fortieth of that PNG's time, at quality 95.
REPLY_FORMATS = {
    "png": ("PNG", {}),
    "jpeg": ("JPEG", {"quality": 95, "subsampling": 0}),
}
# Browsers keep cookies per host, not per port: each server's token cookie is named after
# its port, so two servers on one machine do not overwrite each other's.
COOKIE = "translate_token_{port}"
# A live frame is an 8-byte float (the page's send time, echoed back) and a JPEG.
FRAME_HEADER = struct.Struct("<d")
SHORT_FRAME = (
    f"frame: {{}} bytes, shorter than the {FRAME_HEADER.size}-byte send time that starts a frame"
)
UPLOAD_TYPES = ("image/", "application/octet-stream")
# An HTML form's upload (`curl -F file=@photo.jpg`): its one file part is the image.
FORM_TYPE = "multipart/form-data"
FORM_HINT = "send the image as a file part, e.g. curl -F file=@photo.jpg"
# A form's text fields are not read; a few are let through (a browser form's submit button).
FORM_FIELDS = 8
# What the page's parameters are, for the one line a missing or malformed one gets.
PARAMETERS = {
    "model": "a model's name from /api/models",
    "name": "the image file's name, e.g. name=photo.png",
}
# The names the paint tab's uploads go by in messages.
PAINTED, LABEL_UPLOAD = "painted label map", "label map"
# Query parameters hold the upload's name; a longer one is cut (its suffix kept).
MAX_NAME = 200


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class SameOrigin:
    """Browsers send ``Origin`` (the site of the page asking) with every socket and POST; only
    this server's own page may drive the model, not any site the user happens to visit (the
    token cookie would ride along). Requests without ``Origin`` (scripts, curl) pass."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope) if scope["type"] in ("http", "websocket") else Headers()
        origin, host = headers.get("origin"), headers.get("host", "")
        if origin is None or same_origin(origin, host):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            message = f"Origin {origin}: refused, this server answers only its own page ({host})"
            await JSONResponse({"error": message}, status_code=403)(scope, receive, send)


def same_origin(origin: str, host: str) -> bool:
    """Whether ``origin`` (``http://host:port``) names the ``host`` header's host and port."""
    parts = urlsplit(origin)
    default = {"http": ":80", "https": ":443"}.get(parts.scheme)
    if default is None:  # "null" (a sandboxed frame, a file) or not a web page
        return False
    return parts.netloc.lower().removesuffix(default) == host.lower().removesuffix(default)


class TokenGuard:
    """Every HTTP request and socket must carry the token: ``?token=``, a bearer header or
    the cookie that a page opened with ``?token=`` gets, so the page's own requests pass."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token

    def _given(self, conn: HTTPConnection) -> tuple[str, bool]:
        query = conn.query_params.get("token")
        if query is not None:
            return query, True
        bearer = conn.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            return bearer[7:], False
        return conn.cookies.get(cookie_name(conn.scope), ""), False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given, in_query = self._given(HTTPConnection(scope))
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            response = JSONResponse(
                {"error": "missing or wrong token: open the URL that translate serve printed"},
                status_code=401,
            )
            await response(scope, receive, send)
            return
        if not (in_query and scope["type"] == "http"):
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie, name = SimpleCookie(), cookie_name(scope)
                cookie[name] = self.token
                cookie[name].update({"path": "/", "httponly": True, "samesite": "Strict"})
                header = cookie.output(header="").strip().encode()
                message["headers"] = [*message.get("headers", []), (b"set-cookie", header)]
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def cookie_name(scope: Scope) -> str:
    server = scope.get("server") or ("", None)
    return COOKIE.format(port=server[1] or "")


def decode_upload(data: bytes, name: str, channels: int, max_pixels: int) -> np.ndarray:
    """An uploaded file as the converter reads it (``ValueError`` with its reason if bad).

    The bytes go through a temporary file so that :func:`read_image` (EXIF orientation,
    16-bit, CMYK, palettes, alpha kept) reads them exactly as it reads files on disk.
    """
    if not is_image_path(Path(name)):
        raise ValueError(
            f"{name}: not an image file (expected one of {', '.join(IMAGE_EXTENSIONS)})"
        )
    with tempfile.NamedTemporaryFile(suffix=Path(name).suffix.lower()) as tmp:
        tmp.write(data)
        tmp.flush()
        path = Path(tmp.name)
        _check_pixels(path, name, max_pixels)
        try:
            return read_image(path, channels=channels, alpha="keep")
        except ImageReadError as exc:  # PIL's words may repeat the path: show the name
            reason = error_reason(exc, path).replace(str(path), name)
            raise ValueError(f"{name}: {reason}") from exc


def decode_labels(data: bytes, name: str, classes: int, max_pixels: int) -> np.ndarray:
    """An uploaded label map's class ids (gray or palette PNG, as the converter reads label
    files); ``ValueError`` naming ``name`` for another file or an id out of range."""
    source = io.BytesIO(data)
    _check_pixels(source, name, max_pixels)
    source.seek(0)
    try:
        with Image.open(source) as img:
            img.load()
            return label_array(img, classes, where=name)
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{name}: not a readable image ({unreadable_reason(exc)})") from exc


def upload_name(name: str) -> str:
    """The name an upload is shown and checked by: the last part of ``name``, never a path,
    at most ``MAX_NAME`` characters with its suffix kept for the image-type check."""
    path = Path(Path(name).name)
    if len(path.name) <= MAX_NAME:
        return path.name
    suffix = path.suffix if len(path.suffix) < MAX_NAME else ""
    return path.stem[: MAX_NAME - len(suffix)] + suffix


def _check_pixels(source: Path | io.BytesIO, name: str, max_pixels: int) -> None:
    """Refuse an image larger than ``max_pixels`` from its header, before decoding it."""
    try:
        with Image.open(source) as img:
            width, height = img.size
    except Exception:  # unreadable: the reader names the reason
        return
    if width * height > max_pixels:
        raise ValueError(
            f"{name}: image too large ({width}x{height} = {width * height:,} pixels; "
            f"this server takes up to {max_pixels:,})"
        )


def encode(image: np.ndarray, fmt: str = "PNG", **options: Any) -> bytes:
    """An HWC (or HW) uint8 array as PNG or JPEG bytes: a PNG as the converter writes one at
    its default level (``png_bytes``: a demo output of 256 px in 0.12 of PIL's CPU time at
    that level, for a file 5 % smaller), a JPEG by PIL with ``options``."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if fmt == "PNG":
        return png_bytes(image)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _translate_upload(
    budget: MemoryBudget, data: bytes, name: str, max_pixels: int, reply: str = "png"
) -> tuple[bytes, tuple[int, int], float]:
    """The upload's translation as ``reply`` (a :data:`REPLY_FORMATS` key), its size and
    the milliseconds the model took."""
    translator = budget.translator
    if translator.spec.input_kind == "labels":
        image = decode_labels(data, name, translator.in_channels, max_pixels)
    else:
        image = decode_upload(data, name, translator.in_channels, max_pixels)
    height, width = image.shape[:2]
    if not budget.fits(height, width):
        side = budget.tile_that_fits(height, width, smallest=MIN_TILE)
        hint = (
            f"choose a tile size of {side} or less"
            if side is not None
            else f"even {MIN_TILE}-pixel tiles do not fit; try a smaller image"
        )
        raise ValueError(
            f"{name}: {width}x{height} needs more memory than this server has free; {hint}"
        )
    start = time.perf_counter()
    out = translator.translate_batch([image])[0]
    model_ms = (time.perf_counter() - start) * 1000
    fmt, options = REPLY_FORMATS[reply]
    return encode(out, fmt, **options), (out.shape[1], out.shape[0]), model_ms


def _translate_frame(translator: Translator, data: bytes) -> bytes:
    source = io.BytesIO(data)
    _check_pixels(source, "frame", MAX_FRAME_PIXELS)
    source.seek(0)
    try:
        with Image.open(source) as img:
            img.load()
            image = image_to_array(img, channels=translator.in_channels)
    except Exception as exc:  # a frame the browser mangled: say so, keep the stream
        raise ValueError(f"frame: not a readable image ({unreadable_reason(exc)})") from exc
    return encode(translator.translate_batch([image])[0], "JPEG", quality=LIVE_QUALITY)


async def _body_chunks(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The request body as it arrives; a 413 once it passes ``limit`` bytes."""
    too_big = ApiError(413, f"upload larger than this server's limit of {limit:,} bytes")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_big
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        yield chunk


async def _read_body(request: Request, limit: int) -> bytes:
    return b"".join([chunk async for chunk in _body_chunks(request, limit)])


async def _read_form_file(request: Request, limit: int) -> tuple[bytes, str]:
    """The one file part of a ``multipart/form-data`` body (at most ``limit`` bytes in all):
    its bytes and the file name the client sent with it."""
    try:
        with needs_extra("serve", "a multipart upload"):
            import python_multipart  # noqa: F401 (starlette parses with it)
    except MissingExtra as exc:
        raise ApiError(415, f"{exc}; or send the image as the raw body (image/*)") from exc
    chunks = _body_chunks(request, limit)
    parser = MultiPartParser(request.headers, chunks, max_files=1, max_fields=FORM_FIELDS)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ApiError(400, f"multipart upload: {exc.message} ({FORM_HINT})") from exc
    try:
        files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if not files:
            raise ApiError(400, f"multipart upload without a file part: {FORM_HINT}")
        return await files[0].read(), files[0].filename or ""
    finally:
        await form.close()


def _check_upload_type(kind: str, other: str = "") -> None:
    """A 415 for a body that is no file upload (``other``: another way the route takes)."""
    if not kind.lower().startswith(UPLOAD_TYPES):
        raise ApiError(
            415,
            f"Content-Type {kind or '(none)'}: send the image file as the body, with "
            f"Content-Type image/* or application/octet-stream{other}",
        )


def parameter_errors(exc: RequestValidationError) -> str:
    """FastAPI's list of parameter errors as one line, each naming the parameter."""
    lines = []
    for error in exc.errors():
        where, key = error["loc"][0], error["loc"][-1]
        hint = f" ({PARAMETERS[key]})" if key in PARAMETERS else ""
        lines.append(f"{where} parameter {key!r}: {error['msg'].lower()}{hint}")
    return "; ".join(lines)


def _request_options(params: Mapping[str, str]) -> dict[str, Any]:
    """The translator options a request gives (the ``serve`` fields of TranslatorOptions)."""
    try:
        return query_values(TranslatorOptions, params)
    except OptionError as exc:
        raise ApiError(400, str(exc)) from exc


def create_app(
    models: Models,
    runs: Runs | None = None,
    *,
    token: str | None = None,
    trusted_hosts: list[str] | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_PIXELS,
    gate: Gate | None = None,
) -> FastAPI:
    """The app serving ``models`` (and ``runs`` when given).

    ``token`` guards every request; ``trusted_hosts`` limits the Host header (a page on
    another site cannot reach a loopback server through DNS rebinding); ``gate`` bounds
    concurrent translations (default: one at a time, eight waiting).
    """
    app = FastAPI(title="translate", docs_url=None, redoc_url=None, openapi_url=None)
    gate = gate or Gate()
    app.state.gate = gate
    if trusted_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=trusted_hosts)
    if token:
        app.add_middleware(TokenGuard, token=token)
    app.add_middleware(SameOrigin)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"Retry-After": "1"} if exc.status == 503 else None
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": parameter_errors(exc)}, status_code=400)

    def budget(model: str, params: Mapping[str, str]) -> MemoryBudget:
        options = _request_options(params)
        try:
            directions = models.files[model].generators if model in models.files else {}
            direction = options.pop("direction", None) or next(iter(directions), "AtoB")
            return models.budget(model, direction, **options)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from exc

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/models")
    async def list_models() -> dict[str, Any]:
        return {
            "models": [asdict(info) for info in models.info()],
            "max_bytes": max_bytes,
            "max_pixels": max_pixels,
            "runs": runs is not None,
        }

    @app.get("/api/example")
    async def example(model: str, name: str) -> FileResponse:
        """One of the sample inputs that /api/models lists for ``model``, by its name."""
        path = models.examples(model).get(name)
        if path is None:
            raise ApiError(404, f"model {model!r} has no example named {name!r}")
        return FileResponse(path)

    @app.post("/api/translate")
    async def translate(
        request: Request,
        model: str,
        name: str | None = None,
    ) -> Response:
        """The image file is the request body, or the file part of a multipart form (whose
        file name stands in for ``name``); the answer is the translation as PNG. Other query
        parameters are the ``serve`` options of TranslatorOptions (direction, tile)."""
        # A page on another site can POST form and text types without asking first: the
        # SameOrigin check refuses those by their Origin, and of them only a form's file
        # upload is taken here, never text or an urlencoded form.
        kind = request.headers.get("content-type", "")
        form = kind.lower().startswith(FORM_TYPE)
        if not form:
            _check_upload_type(kind, f", or as a {FORM_TYPE} file part (curl -F file=@photo.jpg)")
        chosen = budget(model, request.query_params)
        if form:
            data, sent = await _read_form_file(request, max_bytes)
            name = name or sent
        if not name:
            raise ApiError(400, f"query parameter 'name': field required ({PARAMETERS['name']})")
        name = upload_name(name)
        if not form:
            data = await _read_body(request, max_bytes)
        png, (width, height), _ = await translated(chosen, data, name)
        return Response(png, media_type="image/png", headers={"X-Size": f"{width}x{height}"})

    async def translated(
        chosen: MemoryBudget, data: bytes, name: str, reply: str = "png"
    ) -> tuple[bytes, tuple[int, int], float]:
        """An upload through the gate, its failures as the status each one gets."""
        try:
            return await gate.run(_translate_upload, chosen, data, name, max_pixels, reply)
        except Busy as exc:
            raise ApiError(503, str(exc)) from exc
        except ValueError as exc:
            raise ApiError(422, str(exc)) from exc
        except RuntimeError as exc:  # e.g. out of memory on a huge image without tiles
            raise ApiError(500, f"{name}: translation failed ({exc})") from exc

    def label_budget(model: str, params: Mapping[str, str]) -> MemoryBudget:
        chosen = budget(model, params)
        if chosen.translator.spec.input_kind != "labels":
            raise ApiError(400, f"model {model!r} takes images, not label maps: nothing to paint")
        return chosen

    @app.post("/api/paint")
    async def paint(
        request: Request, model: str, format: Literal["png", "jpeg"] = "png"
    ) -> Response:
        """The paint tab's request: a label map (a PNG of class ids, gray or palette) as the
        body, the label model's image back as ``format`` (PNG, or JPEG as the page asks),
        with the model's own time in ``X-Model-Ms``. Other query parameters are the
        ``serve`` options (seed, direction)."""
        _check_upload_type(request.headers.get("content-type", ""))
        chosen = label_budget(model, request.query_params)
        data = await _read_body(request, max_bytes)
        image, _, model_ms = await translated(chosen, data, PAINTED, format)
        headers = {"X-Model-Ms": f"{model_ms:.1f}"}
        return Response(image, media_type=f"image/{format}", headers=headers)

    @app.post("/api/labels")
    async def label_ids(request: Request, model: str) -> Response:
        """A label PNG (gray or palette) as the body; its class ids back as an 8-bit gray
        PNG, checked against the model's classes: what the paint tab draws an upload from
        (a browser reads a palette file's colours, never its indices)."""
        _check_upload_type(request.headers.get("content-type", ""))
        classes = label_budget(model, request.query_params).translator.in_channels
        if classes > 256:
            raise ApiError(400, f"model {model!r} has {classes} classes; the paint tab takes 256")
        data = await _read_body(request, max_bytes)
        try:
            ids = decode_labels(data, LABEL_UPLOAD, classes, max_pixels)
        except ValueError as exc:
            raise ApiError(422, str(exc)) from exc
        return Response(encode(ids.astype(np.uint8)), media_type="image/png")

    @app.websocket("/api/live")
    async def live(socket: WebSocket, model: str) -> None:
        """Camera frames in, translations out; the newest frame wins, older ones are dropped.
        The query's options are the translate request's."""
        await socket.accept()
        try:
            chosen = budget(model, socket.query_params).translator
        except ApiError as exc:
            await socket.send_json({"error": str(exc)})
            await socket.close(1008)
            return
        await _live_loop(socket, chosen, gate)

    if runs is not None:
        _add_run_routes(app, runs)
    return app


async def _live_loop(socket: WebSocket, translator: Translator, gate: Gate) -> None:
    latest: list[bytes] = []  # at most one frame waits: the newest
    arrived = asyncio.Event()
    dropped = 0
    closed = False

    async def receive() -> None:
        nonlocal dropped, closed
        try:
            while True:
                frame = await socket.receive_bytes()
                if len(frame) > MAX_FRAME_BYTES + FRAME_HEADER.size:
                    await socket.send_json({"error": f"frame larger than {MAX_FRAME_BYTES:,}"})
                    continue
                if len(frame) < FRAME_HEADER.size:
                    await socket.send_json({"error": SHORT_FRAME.format(len(frame))})
                    continue
                if latest:  # the model is still busy with an older frame: drop the waiting one
                    dropped += 1
                    await socket.send_json({"dropped": dropped})
                latest[:] = [frame]
                arrived.set()
        except (WebSocketDisconnect, RuntimeError, KeyError):
            closed = True
            arrived.set()

    reader = asyncio.create_task(receive())
    try:
        while True:
            await arrived.wait()
            arrived.clear()
            if closed:
                return
            if not latest:
                continue
            frame = latest.pop()
            (sent_at,) = FRAME_HEADER.unpack_from(frame)
            start = time.perf_counter()
            try:
                jpeg = await gate.run(_translate_frame, translator, frame[FRAME_HEADER.size :])
            except Busy:
                dropped += 1
                await socket.send_json({"dropped": dropped})
                continue
            except ValueError as exc:
                await socket.send_json({"error": str(exc)})
                continue
            model_ms = (time.perf_counter() - start) * 1000
            await socket.send_bytes(FRAME_HEADER.pack(sent_at) + jpeg)
            await socket.send_json({"dropped": dropped, "model_ms": round(model_ms, 1)})
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        reader.cancel()


def _add_run_routes(app: FastAPI, runs: Runs) -> None:
    @app.exception_handler(RunNotFound)
    async def not_found(request: Request, exc: RunNotFound) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=404)

    @app.get("/api/runs")
    async def list_runs() -> dict[str, Any]:
        return {"runs": runs.summary()}

    @app.get("/api/runs/{name}")
    async def run_detail(name: str) -> dict[str, Any]:
        return runs.detail(name)

    @app.get("/api/runs/{name}/metrics")
    async def run_metrics(name: str, since: int = 0) -> Response:
        # json.dumps, not FastAPI's encoder: records are plain and can be thousands long.
        return Response(json.dumps(runs.metrics(name, since)), media_type="application/json")

    @app.get("/api/runs/{name}/samples/{sample}")
    async def run_sample(name: str, sample: str) -> FileResponse:
        return FileResponse(runs.sample_path(name, sample), media_type="image/png")
