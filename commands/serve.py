"""`python app.py [serve]` — serve the dashboard, on 127.0.0.1:7860 unless told otherwise."""

from __future__ import annotations

import argparse
import ipaddress

from core.errors import BadParameter

NAME = "serve"
HELP = "Serve the dashboard (default http://127.0.0.1:7860)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--auth", default=None, help="user:password — required when --host is not loopback")
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests whose Host is NAME (repeatable; the bound host, 127.0.0.1, localhost "
        "and [::1] always are) — every other Host is refused, which stops DNS rebinding",
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="also accept cross-origin requests from ORIGIN, e.g. https://tools.example (repeatable); "
        "by default only the dashboard's own origin is",
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_auth(auth: str | None, host: str) -> tuple[str, str] | None:
    """(user, password), or None on loopback; a non-loopback bind without auth is refused."""
    if auth is None:
        if not is_loopback(host):
            raise BadParameter(f"binding {host} exposes the dashboard beyond this machine — add --auth user:password")
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise BadParameter("--auth must look like user:password")
    return user, password


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise BadParameter(f"--port must be between 1 and 65535, got {args.port}")
    auth = parse_auth(args.auth, args.host)
    from dashboard.security import build_policy
    from dashboard.server import bind_socket, serve

    policy = build_policy(args.host, args.allow_host, args.allow_origin)
    bind_socket(args.host, args.port).close()  # a port in use fails here, before the slow app build

    from core.paths import sweep_partials

    swept = sweep_partials()
    if swept:
        freed = sum(size for _, size in swept) / 2**20
        print(f"swept {len(swept)} half-written cache file(s) left by interrupted runs ({freed:.0f} MiB)", flush=True)

    from dashboard.app import build_app
    from dashboard.context import create_context

    demo = build_app(create_context())
    serve(demo, policy, args.host, args.port, auth=auth)
    return 0
