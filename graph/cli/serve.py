"""`agent.py serve`: the HTTP/WebSocket API on the session, under uvicorn.

Owns: the serve command: the address (--host/--port over web.host/web.port), refusing a
non-localhost address with auth off, the token file, binding the port first (a taken port is
one line and exit 1, before the session or the model is loaded), the start-up lines (the
URL, the docs, where the token is, the model), and a clean stop on Ctrl-C (the answer being
written is kept, as in the REPL). API clients can be asked to approve tool calls, so the
session is interactive. Does not own: the app (graph/web/api.py).
"""

from __future__ import annotations

import argparse
import errno
import socket
import sys
import threading


def add(sub, common: argparse.ArgumentParser) -> None:
    serve = sub.add_parser(
        "serve", parents=[common], help="serve the session as an HTTP/WebSocket API (docs at /docs)",
        description="Start the API on the same endless session as the REPL (FastAPI under uvicorn): "
                    "send turns and follow them live (server-sent events or a WebSocket), approve tool "
                    "calls, read the history, status, memory, rewards and prompt. Every request needs "
                    "the token in DATA/api_token.")
    serve.add_argument("--host", default="", help="address to listen on (default: web.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0, help="port (default: web.port, 8765)")
    serve.set_defaults(run=run)


def run(args: argparse.Namespace, ctx, console) -> int:
    import uvicorn

    from graph.session import Session
    from graph.web import auth
    from graph.web.api import create_app

    web = ctx.settings.web
    host, port = args.host or web.host, args.port or web.port
    if not web.auth and not auth.loopback(host):
        print(f"error: serve: refusing to listen on {host} without a token (web.auth is off); "
              "turn web.auth on or listen on 127.0.0.1", file=sys.stderr)
        return 2
    try:
        sock = bind(host, port)
    except OSError as exc:
        taken = exc.errno == errno.EADDRINUSE
        why = "is taken (another server is using it); choose another with --port or web.port" if taken \
            else f"cannot be used: {exc.strerror or exc}"
        print(f"error: serve: port {port} on {host} {why}", file=sys.stderr)
        return 1
    secret = auth.token(ctx.home) if web.auth else None
    ctx.interactive = True  # approvals are asked of the API's clients
    session = Session(ctx)
    for notice in session.recover():
        console.print(f"! {notice}", style="yellow", highlight=False)
    backend = session.backend
    if backend.notice:
        console.print(f"! {backend.notice}", style="yellow", highlight=False)
    app = create_app(session, secret)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    console.print(f"API on {url} · {backend.name}: {backend.model} · data: {ctx.home}", highlight=False,
                  soft_wrap=True)
    if secret:
        console.print(f"token: {auth.token_file(ctx.home)} (send 'Authorization: Bearer TOKEN' or ?token=TOKEN; "
                      f"docs: {url}/docs?token=TOKEN)", highlight=False, soft_wrap=True)
    else:
        console.print(f"auth is off (web.auth); docs: {url}/docs", highlight=False)
    if not auth.loopback(host):
        console.print(f"! listening on {host}: other machines can reach the API; the token travels unencrypted "
                      "(plain HTTP), so use it only on a network you trust", style="yellow", highlight=False,
                      soft_wrap=True)
    console.print("Ctrl-C stops", style="dim")
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5,
                            ws_max_size=web.max_body_kb * 1024)  # a larger WebSocket message closes it (1009)
    try:
        server(config, app.state.turns).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn stopped on Ctrl-C and raises it again once it is done
        pass
    console.print("stopped", style="dim")
    return 0


def server(config, turns):
    """uvicorn's server, stopping the API's turns as soon as Ctrl-C comes (not after the
    graceful shutdown has waited for their streams)."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            threading.Thread(target=turns.stop, daemon=True).start()  # not in the signal handler: it locks
            super().handle_exit(sig, frame)

    return Server(config)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (OSError when it cannot be had)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
