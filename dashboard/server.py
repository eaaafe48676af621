"""Serving the dashboard: the Gradio Blocks mounted on a FastAPI app behind SecurityMiddleware, run by
uvicorn on a socket we bind ourselves.

Binding first means a port already in use is one message (PortInUse, exit 2) before anything prints
"serving at"; mounting (rather than `Blocks.launch`) is what lets every request pass the Host and
Origin checks of dashboard/security.py.
"""

from __future__ import annotations

import errno
import socket

from core.errors import LocalbenchError
from dashboard.security import SecurityMiddleware, SecurityPolicy


class PortInUse(LocalbenchError):
    """The port is taken by another process."""


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port, or PortInUse / LocalbenchError with one line to act on."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise LocalbenchError(f"cannot bind {host!r}: {err.strerror} — pass an address such as 127.0.0.1") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise PortInUse(f"port {port} is already in use — pick another with --port") from None
        raise LocalbenchError(f"cannot bind {host}:{port}: {err.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def secured_app(demo, policy: SecurityPolicy, auth: tuple[str, str] | None, host: str, port: int):
    """The ASGI app serving `demo` at `/` with the policy applied to every request."""
    import gradio as gr
    from fastapi import FastAPI

    parent = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    gr.mount_gradio_app(
        parent,
        demo,
        path="",
        server_name=host,
        server_port=port,
        auth=auth,
        show_error=True,
        ssr_mode=False,
        footer_links=[],
    )
    from dashboard.api_guard import guard_routes

    guard_routes(parent.routes[-1].app)  # the mounted Gradio app: its own routes raise inside it
    return SecurityMiddleware(parent, policy)


def serve(demo, policy: SecurityPolicy, host: str, port: int, auth: tuple[str, str] | None = None) -> None:
    """Bind, print the address, and serve until interrupted."""
    import uvicorn

    sock = bind_socket(host, port)
    app = secured_app(demo, policy, auth, host, port)
    shown = f"[{host}]" if ":" in host else host
    print(f"localbench serving at http://{shown}:{port}", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=3)
    uvicorn.Server(config).run(sockets=[sock])
