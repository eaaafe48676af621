"""Web safety of the served dashboard: a Host allowlist, a strict Origin policy and anti-framing headers.

A local dashboard that answers any Host header can be driven by a web page through DNS rebinding
(Ollama's CVE-2024-28224), and one that echoes any Origin with credentials lets another site read it
with the user's cookie. `SecurityMiddleware` wraps the whole ASGI app: a request whose Host is not on
the allowlist, or whose Origin is neither this server's own origin nor one named with --allow-origin,
gets 403 before Gradio sees it; every response carries `X-Frame-Options: DENY` and CSP
`frame-ancestors 'none'`. The policy is plain data and pure functions, tested alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")

FRAME_HEADERS = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
)
_CORS_HEADERS = {b"access-control-allow-origin", b"access-control-allow-credentials"}


@dataclass(frozen=True)
class SecurityPolicy:
    """Which Host names and which extra Origins the served app accepts."""

    allowed_hosts: frozenset[str]
    """Lower-case host names without port or brackets (`127.0.0.1`, `localhost`, `::1`, ...)."""
    allowed_origins: frozenset[str] = frozenset()
    """Normalised `scheme://host[:port]` origins allowed besides the server's own."""


def host_name(host: str) -> str:
    """The name part of a Host header or netloc, lower-case: `[::1]:7860` → `::1`, `a.b:80` → `a.b`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        return host.rsplit(":", 1)[0]
    return host  # a bare name, or a bare IPv6 address


def normalise_origin(origin: str) -> str:
    """`HTTP://Example.com:80/` → `http://example.com`; an unparsable origin comes back lower-cased."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return origin.strip().lower()
    scheme = parts.scheme.lower()
    name = parts.hostname or ""
    if ":" in name:
        name = f"[{name}]"
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{name}" if port in (None, default) else f"{scheme}://{name}:{port}"


def build_policy(bind_host: str, allow_hosts: Iterable[str] = (), allow_origins: Iterable[str] = ()) -> SecurityPolicy:
    """The policy for a server bound to `bind_host`, plus the user's --allow-host / --allow-origin."""
    hosts = {*LOOPBACK_NAMES, host_name(bind_host), *(host_name(h) for h in allow_hosts if h.strip())}
    return SecurityPolicy(frozenset(hosts), frozenset(normalise_origin(o) for o in allow_origins if o.strip()))


def host_allowed(policy: SecurityPolicy, host_header: str | None) -> bool:
    """True if the request's Host names this server (a missing Host is refused: HTTP/1.1 requires it)."""
    return bool(host_header) and host_name(host_header) in policy.allowed_hosts


def origin_allowed(policy: SecurityPolicy, origin: str | None, host_header: str | None) -> bool:
    """True if there is no Origin, it is this server's own origin (same host and port as the Host
    header), or it was named with --allow-origin. `null` (sandboxed frames, file: pages) is foreign."""
    if origin is None:
        return True
    normal = normalise_origin(origin)
    if normal in policy.allowed_origins:
        return True
    if not host_header or origin.strip().lower() == "null":
        return False
    scheme, _, name = normal.partition("://")
    if scheme not in ("http", "https") or not name:  # garbage must not equal a garbage rendering of Host
        return False
    return normal == normalise_origin(f"{scheme}://{host_header}")


def refusal(policy: SecurityPolicy, host_header: str | None, origin: str | None) -> str | None:
    """The one-line reason a request is refused, or None if it passes."""
    if not host_allowed(policy, host_header):
        name = host_name(host_header or "")
        if not name:  # nothing to name in an --allow-host: the advice is for the client
            return (
                "no host name in the Host header — the client sent none (HTTP/1.1 requires one); "
                "open the dashboard by its address"
            )
        return f"Host {name!r} is not allowed — open the dashboard by its own address, or add --allow-host {name}"
    if not origin_allowed(policy, origin, host_header):
        given = (origin or "").strip()
        if given.lower() == "null":
            return (
                "Origin 'null' is not allowed — a sandboxed page or a file:// page has no origin that can be "
                "trusted by name; open the dashboard by its own address instead"
            )
        normal = normalise_origin(given)
        scheme, _, name = normal.partition("://")
        if not scheme or not name:
            return f"Origin {origin!r} is not allowed — it is not a scheme://host[:port] origin, so none can trust it"
        return f"Origin {origin!r} is not allowed — add --allow-origin {normal} to trust it"
    return None


class SecurityMiddleware:
    """ASGI middleware applying a SecurityPolicy to every HTTP and WebSocket request."""

    def __init__(self, app, policy: SecurityPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host, origin = headers.get(b"host"), headers.get(b"origin")
        reason = refusal(self.policy, host, origin)
        if reason is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
                return
            body = (reason + "\n").encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                        *FRAME_HEADERS,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = _rewrite_headers(message.get("headers", []), origin)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _rewrite_headers(raw: list, origin: str | None) -> list:
    """Drop the app's own CORS and framing headers, then add ours: the (already vetted) Origin is the
    only one ever allowed, and framing is always denied."""
    drop = {*_CORS_HEADERS, b"x-frame-options", b"x-content-type-options"}
    kept = []
    for key, value in raw:
        name = bytes(key).lower()
        if name == b"content-security-policy":
            value = bytes(value) + b"; frame-ancestors 'none'"
            kept.append((key, value))
            continue
        if name not in drop:
            kept.append((key, value))
    has_csp = any(bytes(k).lower() == b"content-security-policy" for k, _ in kept)
    kept.extend(h for h in FRAME_HEADERS if not (has_csp and h[0] == b"content-security-policy"))
    if origin is not None:
        kept.append((b"access-control-allow-origin", origin.encode("latin-1")))
        kept.append((b"access-control-allow-credentials", b"true"))
        kept.append((b"vary", b"Origin"))
    return kept
