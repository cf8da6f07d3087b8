"""The API under load (`agent.py serve`): 10 concurrent locust clients sending turns for a few
minutes, and the API's overhead per turn against calling the session directly.

    nice -n 10 python tests/bench/bench_api.py [--users 10] [--seconds 180] [--model scripted|embedded]
                                               [--overhead-turns 40]

1. Overhead (same run, one client, turns one after another): a turn through the API (POST
   /turns, its server-sent events read to `end`, upkeep included, over real HTTP to a real
   uvicorn server in its own process) against the same turn as `for _ in Session.turn(text)`
   in this process, alternating, each on its own data folder with the same config and model;
   prints the medians and their ratio (goal ≤ 1.1x).
2. Load: a fresh data folder and server; locust (headless, this file is its locustfile) runs
   `--users` clients for `--seconds`, each sending turns back to back with a unique message;
   prints p50/p95 of the time to the first event (`accepted`), to `done` (the answer is in)
   and to `end` (upkeep done: the stream closes), errors (HTTP failures and `error` events),
   and checks the transcript: every message sent is there exactly once (none lost, none
   duplicated, none extra), each with its answer (scripted: "echo: " + the message), every
   turn done.

--model scripted (default): a scripted echo model that takes ~no time (what is measured is
the API and the session); embedded: the real SmolLM2 on llama.cpp (short answers:
llm.max_tokens 24, temperature 0: both sides of the overhead comparison answer alike).
Long-term memory is off (its embedder would dominate a 2-core machine), tools are off
(agent.max_tool_rounds 0). Progress goes to stderr; the last line of stdout is one JSON
object with the numbers. Exit 0 either way.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {"memory": {"enabled": False}, "agent": {"max_tool_rounds": 0},
            "learning": {"policy": False}, "evolution": {"every_turns": 0},
            "tools": {"browser": {"enabled": False}}}


def echo_model():
    """A chat model answering "echo: <the latest user message>", streamed in three pieces."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fakes import ScriptedChat
    from langchain_core.messages import AIMessageChunk
    from langchain_core.outputs import ChatGenerationChunk

    class Echo(ScriptedChat):
        def _stream(self, messages, stop=None, run_manager=None, **kwargs):
            text = [m for m in messages if m.type == "human"][-1].text
            for piece in ("echo:", " ", text):
                yield ChatGenerationChunk(message=AIMessageChunk(content=piece))

    return Echo()


def context(home: Path, config: Path, model: str):
    sys.path.insert(0, str(ROOT))
    from graph.context import Context

    ctx = Context(home=str(home), config=str(config))
    if model == "scripted":
        sys.path.insert(0, str(ROOT / "tests"))
        from fakes import install

        install(ctx, echo_model())
    return ctx


def serve(home: str, config: str, model: str, port_file: str) -> None:
    """The server process: the API on its own data folder, the port written to `port_file`."""
    import uvicorn

    from graph.cli.serve import bind
    from graph.session import Session
    from graph.web import auth
    from graph.web.api import create_app

    ctx = context(Path(home), Path(config), model)
    ctx.interactive = True
    app = create_app(Session(ctx), auth.token(ctx.home))
    sock = bind("127.0.0.1", 0)
    Path(port_file).write_text(str(sock.getsockname()[1]))
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


class Server:
    def __init__(self, folder: Path, config: Path, model: str):
        self.home = folder / "home"
        port_file = folder / "port"
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(self.home), str(config), model,
                                      str(port_file)], env=dict(os.environ, PYTHONPATH=str(ROOT)))
        deadline = time.monotonic() + 300
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.1)
        self.url = f"http://127.0.0.1:{port_file.read_text()}"
        self.token = (self.home / "api_token").read_text().strip()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def api_turn(client, text: str) -> dict:
    """One turn over the API: seconds to the first event, to done and to end; errors."""
    start = time.perf_counter()
    marks, errors = {}, []
    with client.stream("POST", "/turns", json={"text": text}) as response:
        if response.status_code != 200:
            return {"error": f"HTTP {response.status_code}"}
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])
            marks.setdefault("first", time.perf_counter() - start)
            if event["kind"] in ("done", "end"):
                marks[event["kind"]] = time.perf_counter() - start
            elif event["kind"] == "error":
                errors.append(event["data"]["error"])
    return {**marks, "error": "; ".join(errors)}


def overhead(folder: Path, config: Path, model: str, turns: int) -> dict:
    import httpx

    from graph.session import Session

    server = Server(folder / "api", config, model)
    session = Session(context(folder / "direct" / "home", config, model))
    direct, through = [], []
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"},
                          timeout=600) as client:
            for i in range(2):  # warm-up: the first turns load the model, open the databases
                list(session.turn(f"warm-up {i}"))
                api_turn(client, f"warm-up {i}")
            for i in range(turns):
                text = f"overhead turn {i}: 日本語も少し"
                start = time.perf_counter()
                for _ in session.turn(text):
                    pass
                direct.append(time.perf_counter() - start)
                through.append(api_turn(client, text)["end"])
                print(f"overhead {i + 1}/{turns}", file=sys.stderr, end="\r")
    finally:
        server.stop()
    d, a = statistics.median(direct), statistics.median(through)
    return {"direct_ms": round(d * 1000, 1), "api_ms": round(a * 1000, 1), "ratio": round(a / d, 3)}


def load(folder: Path, config: Path, model: str, users: int, seconds: int) -> dict:
    from graph.store import Store

    server = Server(folder / "load", config, model)
    log = folder / "load.jsonl"
    try:
        env = dict(os.environ, BENCH_API_TOKEN=server.token, BENCH_API_LOG=str(log), PYTHONPATH=str(ROOT))
        subprocess.run([sys.executable, "-m", "locust", "-f", __file__, "--headless", "-u", str(users),
                        "-r", str(users), "-t", f"{seconds}s", "--stop-timeout", "600", "--host", server.url,
                        "--only-summary", "--loglevel", "WARNING"], env=env, check=False)
        store = Store(server.home)
        deadline = time.monotonic() + 600
        while store.open_turns() and time.monotonic() < deadline:  # a turn whose client stopped waiting
            time.sleep(0.5)
    finally:
        server.stop()
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    rows = store.history()
    users_rows = [r for r in rows if r["role"] == "user"]
    sent = [r["text"] for r in records]
    answers = {r["turn"]: r["content"] for r in rows if r["role"] == "assistant"}
    wrong = [r["content"] for r in users_rows if model == "scripted" and answers.get(r["turn"]) != "echo: " + r["content"]]
    statuses = [s for _, s in store.read("SELECT turn, status FROM turns")]

    def pct(key: str, q: float) -> float | None:
        values = sorted(r[key] for r in records if key in r)
        return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 1) if values else None

    return {"users": users, "seconds": seconds, "turns_sent": len(sent),
            "errors": sum(bool(r.get("error")) for r in records),
            "first_p50_ms": pct("first", 0.5), "first_p95_ms": pct("first", 0.95),
            "done_p50_ms": pct("done", 0.5), "done_p95_ms": pct("done", 0.95),
            "end_p50_ms": pct("end", 0.5), "end_p95_ms": pct("end", 0.95),
            "transcript_user_messages": len(users_rows),
            "lost": len(set(sent) - {r["content"] for r in users_rows}),
            "duplicated": len(users_rows) - len({r["content"] for r in users_rows}),
            "extra": len({r["content"] for r in users_rows} - set(sent)),
            "unanswered": sum(r["turn"] not in answers for r in users_rows),
            "wrong_answers": len(wrong), "turns_not_done": sum(s != "done" for s in statuses)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--model", choices=["scripted", "embedded"], default="scripted")
    parser.add_argument("--overhead-turns", type=int, default=40)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import yaml

    settings = dict(SETTINGS)
    if args.model == "embedded":
        settings["llm"] = {"backend": "embedded", "max_tokens": 24, "temperature": 0}
    with tempfile.TemporaryDirectory(prefix="bench_api_") as tmp:
        folder = Path(tmp)
        config = folder / "config.yaml"
        config.write_text(yaml.safe_dump(settings), encoding="utf-8")
        result = {"model": args.model}
        if args.overhead_turns:
            result["overhead"] = overhead(folder, config, args.model, args.overhead_turns)
            print(f"\noverhead: {result['overhead']}", file=sys.stderr)
        if args.seconds:
            result["load"] = load(folder, config, args.model, args.users, args.seconds)
        print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__" and sys.argv[1:2] == ["--serve"]:
    serve(*sys.argv[2:6])
elif __name__ == "__main__":
    main()
else:  # loaded by locust as its locustfile
    from locust import HttpUser, task

    class TurnSender(HttpUser):
        """Sends turns back to back, each with a unique message; logs each turn's timings."""

        def on_start(self) -> None:
            self.client.headers["Authorization"] = f"Bearer {os.environ['BENCH_API_TOKEN']}"
            self.name = uuid.uuid4().hex[:6]
            self.sent = 0

        @task
        def send_turn(self) -> None:
            self.sent += 1
            text = f"client {self.name} message {self.sent}: こんにちは"
            start = time.perf_counter()
            marks, errors = {}, []
            with self.client.post("/turns", json={"text": text}, stream=True, name="POST /turns",
                                  catch_response=True) as response:
                if response.status_code != 200:
                    errors.append(f"HTTP {response.status_code}")
                else:
                    for line in response.iter_lines(decode_unicode=True):
                        if not line or not line.startswith("data: "):
                            continue
                        event = json.loads(line[6:])
                        marks.setdefault("first", time.perf_counter() - start)
                        if event["kind"] in ("done", "end"):
                            marks[event["kind"]] = time.perf_counter() - start
                        elif event["kind"] == "error":
                            errors.append(event["data"]["error"])
                if errors:
                    response.failure("; ".join(errors))
                else:
                    response.success()
            with open(os.environ["BENCH_API_LOG"], "a", encoding="utf-8") as log:
                log.write(json.dumps({"text": text, **marks, "error": "; ".join(errors)}, ensure_ascii=False) + "\n")
