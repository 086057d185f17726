"""Serving an app with uvicorn: in the foreground (`nlplab serve`) or in a background thread on a free loopback
port that stops when the block ends (tests, benchmarks)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from nlplab.errors import ConfigError


def config(app: Any, host: str = "127.0.0.1", port: int = 8000) -> uvicorn.Config:
    """uvicorn's settings for nlplab: the app logs its own one line per request, so uvicorn's access log is off."""
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
                          timeout_graceful_shutdown=5)


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (0: a free port). It is made with protocol IPPROTO_TCP so that asyncio
    sets TCP_NODELAY on each connection: otherwise an answer written in two parts (headers, then body) waits for the
    client's delayed ACK, 40 ms per request on Linux."""
    family, _, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)[0]
    sock = socket.socket(family, socket.SOCK_STREAM, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def serve(app: Any, host: str, port: int) -> None:
    """Serve until interrupted: Ctrl-C or SIGTERM shut the server down gracefully, then uvicorn raises the signal
    again (SIGTERM ends the process with it, Ctrl-C as KeyboardInterrupt)."""
    try:
        sock = listen(host, port)
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror}; choose another --port or --host") from None
    with sock:
        uvicorn.Server(config(app, host, port)).run(sockets=[sock])


@contextmanager
def running(app: Any, host: str = "127.0.0.1", start_timeout: float = 60.0) -> Iterator[str]:
    """Serve `app` on a free port of `host` in a daemon thread; yields the base URL and stops the server after."""
    sock = listen(host, 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(config(app, host, port))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="nlplab-serve")
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
