"""Listening: the socket, the URL to print, and a server on a background thread (for tests,
the load test and the screenshot tool)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

# Camera frames are small JPEGs; a bigger socket message is refused by uvicorn.
WS_MAX_SIZE = 8 * 1024 * 1024


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port), so the URL printed is the real one."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(128)
    return sock


def check_tls(certfile: str, keyfile: str | None) -> None:
    """Load the certificate and key as the server will, so a bad file is one line before
    the URL is printed, not a traceback after it."""
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
    except OSError as exc:  # ssl.SSLError included
        named = f"--ssl-certfile {certfile}" + (f" --ssl-keyfile {keyfile}" if keyfile else "")
        raise ValueError(
            f"{named}: cannot load the certificate and key ({exc.strerror or exc}); give a PEM "
            "certificate and its private key (in --ssl-keyfile or the same file)"
        ) from None


def url(host: str, port: int, token: str | None = None, scheme: str = "http") -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}/" + (f"?token={token}" if token else "")


def make_server(app: ASGIApp, **options: object) -> uvicorn.Server:
    return uvicorn.Server(
        uvicorn.Config(app, log_level="warning", ws_max_size=WS_MAX_SIZE, **options)
    )


class BackgroundServer:
    """``with BackgroundServer(app) as url:`` serves on 127.0.0.1, an ephemeral port, in a
    thread, and stops when the block ends."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", timeout: float = 30) -> None:
        self.server = make_server(app)
        self.sock = bind(host, 0)
        self.url = url(host, self.sock.getsockname()[1])
        self.timeout = timeout
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + self.timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server at {self.url} did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.should_exit = True
        self.thread.join(self.timeout)
        self.sock.close()
