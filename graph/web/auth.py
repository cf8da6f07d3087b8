"""Who may use the API: the token and the origins.

Owns: the API token (random, made on the first `serve` in DATA/api_token with owner-only
permissions, kept across starts), checking it on every HTTP request and WebSocket handshake
(`Authorization: Bearer TOKEN` or `?token=TOKEN`; else 401 with one JSON error), checking a
WebSocket's Origin (a browser page may only connect from the server's own origin or one in
web.cors_origins; else 403), and whether a host is loopback (auth off is allowed only there).
Does not own: CORS headers (api.py adds Starlette's middleware when origins are configured)
or what the routes do.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
from pathlib import Path
from urllib.parse import parse_qs

TOKEN_FILE = "api_token"


def token_file(home: str) -> Path:
    return Path(home) / TOKEN_FILE


def token(home: str) -> str:
    """The API token, made (owner-only) on first use."""
    path = token_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)  # a copied or edited file: owner-only again
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        value = secrets.token_urlsafe(32)
        f.write(value + "\n")
    return value


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Guard:
    """ASGI middleware: the token on every request (None: auth off), the Origin of WebSockets."""

    def __init__(self, app, secret: str | None, origins: list[str]):
        self.app, self.secret, self.origins = app, secret, set(origins)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.secret is not None and not self._authorized(scope, headers):
            return await _refuse(scope, receive, send, 401, "missing or wrong API token: send the header "
                                 "'Authorization: Bearer TOKEN' or the query ?token=TOKEN (TOKEN is in DATA/api_token)")
        origin = headers.get("origin")
        if scope["type"] == "websocket" and origin and origin not in self.origins | {
                f"http://{headers.get('host', '')}", f"https://{headers.get('host', '')}"}:
            return await _refuse(scope, receive, send, 403, f"WebSocket from origin {origin} refused "
                                 "(allowed: this server's own origin and web.cors_origins)")
        return await self.app(scope, receive, send)

    def _authorized(self, scope, headers: dict) -> bool:
        given = ""
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            given = value.strip()
        elif query := parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token"):
            given = query[0]
        return bool(given) and hmac.compare_digest(given.encode(), self.secret.encode())


async def _refuse(scope, receive, send, status: int, error: str) -> None:
    body = json.dumps({"error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    prefix = "" if scope["type"] == "http" else "websocket."
    if prefix:
        await receive()  # the handshake's websocket.connect
    if prefix and "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008, "reason": error[:120]})
        return
    await send({"type": prefix + "http.response.start", "status": status, "headers": headers})
    await send({"type": prefix + "http.response.body", "body": body})
