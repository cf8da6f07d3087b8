"""`agent.py ui`: the Streamlit web UI on the session, in this process.

Owns: the ui command: checking that the session opens (one line and exit 1 if not, before
the server starts), that it listens on this machine only (the UI has no login: anyone who
reaches it may approve commands), and that the port is free (one line, exit 1), printing
the URL, then running Streamlit's server on graph/web/ui/app.py offline (no usage statistics,
no browser unless --browser, no file watcher) until Ctrl-C, which stops the answer being
written (the part written is kept) and the server. Does not own: the pages (graph/web/ui/).
"""

from __future__ import annotations

import argparse
import errno
import socket
import sys
import threading

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add(sub, common: argparse.ArgumentParser) -> None:
    ui = sub.add_parser("ui", parents=[common], help="the web UI (Streamlit): chat, monitoring, learning, evolution",
                        description="Serve the web UI on the same endless session as the REPL, -m and the API.")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    ui.add_argument("--port", type=int, default=8501, help="port (default: 8501)")
    ui.add_argument("--browser", action="store_true", help="open the UI in the browser")
    ui.set_defaults(run=run)


def taken(host: str, port: int) -> str:
    """Why the UI cannot listen on host:port ("" when it can)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # as the server binds: a closed connection still in TIME_WAIT is no listener
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is taken (another program listens there); choose one with --port"
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return ""


def run(args: argparse.Namespace, ctx, console) -> int:
    from pathlib import Path

    from graph.context import serve
    from graph.session import Session

    if not 0 < args.port < 65536:
        print(f"error: --port must be from 1 to 65535, got {args.port}", file=sys.stderr)
        return 2
    if args.host not in LOOPBACK:
        print(f"error: the web UI has no login, so it listens on this machine only ({', '.join(LOOPBACK)}), "
              f"not {args.host}", file=sys.stderr)
        return 2
    if problem := taken(args.host, args.port):
        print(f"error: {problem}", file=sys.stderr)
        return 1
    Session(ctx)  # a bad config or data folder: one line (main.py), and no server
    serve(ctx)  # app.py's Context (Streamlit runs it in this process) shares this session's services
    from streamlit.web import bootstrap

    settings = {"server.address": args.host, "server.port": args.port, "server.headless": not args.browser,
             "server.fileWatcherType": "none", "server.runOnSave": False, "browser.gatherUsageStats": False,
             "logger.hideWelcomeMessage": True, "client.toolbarMode": "minimal", "global.developmentMode": False,
             "browser.serverAddress": args.host, "browser.serverPort": args.port}
    flags = {name.replace(".", "_"): value for name, value in settings.items()}  # as `streamlit run` passes them
    bootstrap.load_config_options(flags)
    script = Path(__file__).resolve().parent.parent / "web" / "ui" / "app.py"
    passed = [f"--{name}={getattr(ctx, name)}" for name in ("home", "config")]
    passed += [f"--{name}={getattr(args, name)}" for name in ("backend", "think") if getattr(args, name, "")]
    console.print(f"web UI: http://{args.host}:{args.port} (session {ctx.home}; Ctrl-C stops it)", highlight=False)
    try:
        bootstrap.run(str(script), False, passed, flags)
    except KeyboardInterrupt:
        pass
    finally:
        ctx.stop.set()  # a turn still being written stops; what was written is kept
        for thread in threading.enumerate():
            if thread.name == "web-turn":  # graph/web/ui/live.py: let it save the partial answer
                thread.join(timeout=10)
    console.print("web UI stopped; the session is kept.", highlight=False)
    return 0
