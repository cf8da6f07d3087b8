"""`agent.py studio`: LangGraph Studio on the real session.

Owns: the studio command: checking that the session opens safely (one line and exit 1 if
not, before any server starts), then running the LangGraph dev server (`langgraph dev` from
langgraph-cli, on langgraph.json) offline: no browser unless --browser, no usage analytics,
no version check against PyPI, no LangSmith tracing (each unless the user's environment
sets it). --backend and --think reach the server as their environment variables. The server
runs in DATA/studio/, where it keeps its own scratch (`.langgraph_api/`: its list of threads
and runs), cleared at each start: the session itself is only in the data folder. Studio's
runs work in the folder `agent.py studio` was started in, as the REPL's do (tools.files.roots,
unless set). Does not own: what the server loads (graph/studio.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

OFFLINE = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "1",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
}


def add(sub, common: argparse.ArgumentParser) -> None:
    studio = sub.add_parser(
        "studio", parents=[common], help="serve the session to LangGraph Studio (langgraph dev)",
        description="Start the local LangGraph server for LangGraph Studio with the real session: "
                    "its window, summary and checkpoint history, and turns that join it. "
                    "Studio's runs read config.yaml beside agent.py and AGENT_* variables "
                    "(or a config file named in the run's context: {\"config\": FILE}).")
    studio.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    studio.add_argument("--port", type=int, default=2024, help="port (default: 2024; another if it is taken)")
    studio.add_argument("--browser", action="store_true", help="open Studio (smith.langchain.com) in the browser")
    studio.set_defaults(run=run)


def run(args: argparse.Namespace, ctx, console) -> int:
    from importlib.util import find_spec

    if find_spec("langgraph_api") is None or find_spec("langgraph_cli") is None:
        print("error: studio needs the LangGraph server: pip install -r requirements.txt (langgraph-cli[inmem])",
              file=sys.stderr)
        return 1
    from graph.config import ROOT
    from graph.studio import SESSION_THREAD, open_session

    if getattr(args, "config", None):
        print("error: studio: --config does not reach Studio's runs; use AGENT_* variables or the run's context "
              '{"config": FILE}', file=sys.stderr)
        return 2
    open_session(ctx)  # StoreError or ConfigError: one line (main.py), and no server
    scratch = Path(ctx.home) / "studio"
    shutil.rmtree(scratch / ".langgraph_api", ignore_errors=True)  # a previous server's threads and runs
    scratch.mkdir(exist_ok=True)
    env = dict(os.environ, AGENT_HOME=ctx.home,
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    if not ctx.settings.tools.files.roots:
        env["AGENT_TOOLS__FILES__ROOTS"] = json.dumps([os.getcwd()])
    for name, value in OFFLINE.items():
        env.setdefault(name, value)
    if getattr(args, "backend", ""):
        env["AGENT_LLM__BACKEND"] = args.backend
    if getattr(args, "think", ""):
        env["AGENT_REASONING__MODE"] = args.think
    command = [sys.executable, "-m", "langgraph_cli", "dev", "--no-reload", "--config", str(ROOT / "langgraph.json"),
               "--host", args.host, "--port", str(args.port)] + ([] if args.browser else ["--no-browser"])
    console.print(f"session {ctx.home}: Studio shows it as thread {SESSION_THREAD} (graph: agent)", highlight=False)
    server = subprocess.Popen(command, cwd=scratch, env=env)
    try:
        return server.wait()
    except KeyboardInterrupt:  # the server got the Ctrl-C too and stops
        return server.wait()
