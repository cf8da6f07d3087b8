"""The HTTP/WebSocket API (`agent.py serve`), against a real uvicorn server on a free port with
real clients (httpx, websockets): turns streamed as server-sent events and over a WebSocket,
an approval round trip, auth refusals, bad input, the data routes, and `agent.py serve` itself
on the real embedded model beside `agent.py -m` on the same session. Most turns use the
scripted model (fakes.py) for determinism; the serve tests use the real embedded model."""

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import httpx
import pytest
import uvicorn
from conftest import ROOT, agent_env
from fakes import ScriptedChat, install
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from graph.cli import serve
from graph.context import Context
from graph.session import Session
from graph.store import Store
from graph.web import auth, turns
from graph.web.api import create_app


class Api:
    """A real uvicorn server on a free port, serving create_app() in a thread of this process."""

    def __init__(self, session: Session, secret: str | None):
        self.session, self.token = session, secret
        sock = serve.bind("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(session, secret)
        self.server = serve.server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2),
                                   app.state.turns)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {secret}"}, timeout=60)

    def turn(self, text: str) -> list[dict]:
        """POST /turns and read its server-sent events to the end."""
        with self.http.stream("POST", "/turns", json={"text": text}) as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            return sse(response)

    def ws(self, **kwargs):
        return connect(f"ws://127.0.0.1:{self.port}/ws?token={self.token}", open_timeout=10, **kwargs)

    def close(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)


def streamed(response):
    """The server-sent events of a response, each as it arrives."""
    kind = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[len("event: "):]
        elif line.startswith("data: "):
            event = json.loads(line[len("data: "):])
            assert event["kind"] == kind
            yield event


def sse(response) -> list[dict]:
    return list(streamed(response))


def tokens(events) -> str:
    return "".join(e["data"] for e in events if e["kind"] == "token")


@pytest.fixture
def api(tmp_path, make_config):
    servers = []

    def start(replies=(), settings=None, secret=True) -> Api:
        work = tmp_path / "work"
        work.mkdir(exist_ok=True)
        config = make_config({"memory": {"enabled": False}, **(settings or {})})
        ctx = Context(home=str(tmp_path / "home"), config=str(config), cwd=str(work))
        install(ctx, ScriptedChat(replies=list(replies)))
        server = Api(Session(ctx), auth.token(ctx.home) if secret else None)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_a_turn_streams_as_server_sent_events_and_joins_the_history(api):
    server = api(["こんにちは、元気です。 How can I help?"])
    events = server.turn("こんにちは")
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "accepted" and kinds[-1] == "end" and "done" in kinds
    assert kinds.index("done") > max(i for i, k in enumerate(kinds) if k == "token")
    assert tokens(events) == "こんにちは、元気です。 How can I help?"
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert len({e["turn"] for e in events}) == 1
    state = server.http.get(f"/turns/{events[0]['turn']}").json()
    assert state["finished"] and state["log"] == events
    with server.http.stream("GET", f"/turns/{events[0]['turn']}/events") as replay:
        assert sse(replay) == events  # a listener joining late gets the turn from its first event
    with server.ws() as ws:
        ws.send(json.dumps({"type": "follow", "turn": events[0]["turn"]}))
        assert receive_turn(ws) == events

    page = server.http.get("/history").json()
    assert [(m["role"], m["content"]) for m in page["messages"]] == [
        ("user", "こんにちは"), ("assistant", "こんにちは、元気です。 How can I help?")]
    found = server.http.get("/history", params={"search": "元気"}).json()["messages"]
    assert [m["role"] for m in found] == ["assistant"]
    status = server.http.get("/status").json()
    assert status["turns"] == 1 and status["backend"] == "fake"
    listed = server.http.get("/tools").json()
    assert {"run_command", "read_file"} <= {t["name"] for t in listed["tools"]}
    assert all(t["source"] and t["description"] for t in listed["tools"])


def test_history_pages_back(api, monkeypatch):
    monkeypatch.setattr(turns, "KEEP", 3)
    server = api([f"answer {i}" for i in range(5)])
    sent = [server.turn(f"question {i}")[0]["turn"] for i in range(5)]
    assert [server.http.get(f"/turns/{t}").status_code for t in sent] == [404, 404, 200, 200, 200]
    newest = server.http.get("/history", params={"turns": 2}).json()
    assert [m["content"] for m in newest["messages"]] == ["question 3", "answer 3", "question 4", "answer 4"]
    older = server.http.get("/history", params={"turns": 2, "before": newest["before"]}).json()
    assert [m["content"] for m in older["messages"]] == ["question 1", "answer 1", "question 2", "answer 2"]


def test_rating_an_answer_over_the_api_sets_its_reward(api):
    server = api(["Paris."])
    server.turn("capital of France?")
    rated = server.http.post("/ratings", json={"kind": "rating", "stars": 5})
    assert rated.status_code == 200, rated.text
    assert rated.json()["turn"] == 1 and rated.json()["components"]["rating"] == 1.0 and rated.json()["reward"] > 0
    assert server.http.post("/ratings", json={"kind": "rating", "stars": 9}).status_code == 422
    assert "error" in server.http.post("/ratings", json={"kind": "meh"}).json()


def test_prompt_versions_over_the_api(api):
    server = api(["Hi."])
    server.turn("hello")
    http = server.http
    first = http.get("/prompt").json()
    assert first["serving"] and first["id"] == 1
    text = first["text"].rstrip("\n") + "\nAnswer in one short sentence (短く).\n"
    made = http.post("/prompt", json={"text": text, "why": "shorter"})
    assert made.status_code == 200, made.text
    assert made.json()["text"] == text.strip() and made.json()["serving"]
    assert [v["id"] for v in http.get("/prompt/versions").json()] == [1, 2]
    diff = http.get("/prompt/diff").json()
    assert (diff["from"], diff["to"]) == (1, 2) and "+Answer in one short sentence (短く)." in diff["diff"]
    assert http.post("/prompt", json={"why": "neither"}).status_code == 400
    assert http.get("/prompt", params={"version": 9}).status_code == 400
    back = http.post("/prompt/rollback", json={"why": "too short"}).json()
    assert back["undone"]["id"] == 2 and back["serving"]["id"] == 1
    assert http.get("/prompt").json()["id"] == 1


def test_tuning_data_and_evolution_over_the_api(api):
    server = api(["Tokyo is the capital of Japan."])
    server.turn("日本の首都は？")
    http = server.http
    made = http.post("/examples", json={"label": "desirable", "turn": 1, "why": "right"})
    assert made.status_code == 200, made.text
    listed = http.get("/examples").json()
    assert [e["id"] for e in listed["examples"]] == [made.json()["id"]] and sum(listed["counts"].values()) == 1
    assert http.post("/examples", json={"label": "meh", "turn": 1}).status_code == 422
    export = http.get("/examples/export", params={"format": "sft"})
    records = [json.loads(line) for line in export.text.splitlines()]
    assert export.headers["content-type"].startswith("application/x-ndjson") and len(records) == 1
    assert "日本の首都は？" in json.dumps(records[0], ensure_ascii=False)
    assert http.delete(f"/examples/{made.json()['id']}").status_code == 200
    assert http.get("/examples").json()["examples"] == []
    assert http.delete("/examples/999").status_code == 400

    assert http.get("/evolution/runs").json() == []
    lineage = http.get("/evolution/lineage")
    assert lineage.status_code == 400 and "no evolution runs yet" in lineage.json()["error"]
    assert http.post("/evolution/genomes/42/promote").status_code == 400


def test_memory_over_the_api(api):
    server = api(settings={"memory": {"enabled": True}})
    http = server.http
    added = http.post("/memory", json={"text": "The user's cat is called Mochi (猫のもち).", "kind": "fact"})
    assert added.status_code == 200, added.text
    assert added.json()["what"] == "added"
    memory_id = added.json()["memory"]["id"]
    assert [m["id"] for m in http.get("/memory").json()] == [memory_id]
    found = http.get("/memory/search", params={"q": "what is the cat's name?"}).json()
    assert found["memories"][0]["id"] == memory_id
    assert http.post("/memory", json={"text": "x", "kind": "gossip"}).status_code == 422
    assert http.delete(f"/memory/{memory_id}").status_code == 200
    assert http.get("/memory").json() == []
    assert http.delete("/memory/nope").status_code == 400


def test_every_request_needs_the_token(api, tmp_path):
    server = api()
    path = auth.token_file(str(tmp_path / "home"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert auth.token(str(tmp_path / "home")) == server.token  # kept across starts
    for headers, params in (({}, {}), ({"Authorization": "Bearer wrong"}, {}), ({}, {"token": "wrong"}),
                            ({"Authorization": f"Basic {server.token}"}, {})):
        for method, route in (("GET", "/history"), ("POST", "/turns"), ("GET", "/docs"), ("GET", "/openapi.json"),
                              ("GET", "/docs-files/swagger-ui.css")):
            response = httpx.request(method, server.url + route, headers=headers, params=params, json={"text": "x"})
            assert response.status_code == 401, (route, headers, params)
            assert list(response.json()) == ["error"] and "token" in response.json()["error"]
    assert httpx.get(server.url + "/history", params={"token": server.token}).status_code == 200
    docs = httpx.get(server.url + "/docs", params={"token": server.token})
    assert docs.status_code == 200 and f"/openapi.json?token={server.token}" in docs.text
    script = httpx.get(server.url + f"/docs-files/swagger-ui-bundle.js?token={server.token}")  # served here, no CDN
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text and "cdn." not in docs.text
    spec = httpx.get(server.url + "/openapi.json", params={"token": server.token}).json()
    assert {"/turns", "/history", "/ratings"} <= set(spec["paths"])
    assert server.session.store.history() == []  # no refused turn got in

    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=10)
    assert refused.value.response.status_code == 401 and b"token" in refused.value.response.body
    with pytest.raises(InvalidStatus) as refused:
        server.ws(origin="http://evil.example")
    assert refused.value.response.status_code == 403
    with server.ws(origin=server.url) as ws:  # the server's own page may connect
        ws.send(json.dumps({"type": "follow", "turn": "nope"}))
        assert json.loads(ws.recv(timeout=10))["data"]["status"] == 404


def test_cors_only_for_configured_origins(api):
    page = "http://localhost:8501"
    plain = api()
    preflight = {"Origin": page, "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in httpx.options(plain.url + "/turns", headers=preflight).headers
    assert "access-control-allow-origin" not in plain.http.get("/history", headers={"Origin": page}).headers
    plain.close()
    shared = api(settings={"web": {"cors_origins": [page]}})
    answer = httpx.options(shared.url + "/turns", headers={**preflight, "Access-Control-Request-Headers":
                                                            "authorization,content-type"})
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == page
    assert shared.http.get("/history", headers={"Origin": page}).headers["access-control-allow-origin"] == page
    assert httpx.get(shared.url + "/history", headers={"Origin": page}).status_code == 401  # still needs the token
    with shared.ws(origin=page) as ws:
        ws.send(json.dumps({"type": "follow", "turn": "nope"}))
        assert json.loads(ws.recv(timeout=10))["data"]["status"] == 404
    with pytest.raises(InvalidStatus):
        shared.ws(origin="http://localhost:9999")


def test_bad_input_is_a_clear_4xx_and_the_server_goes_on(api):
    server = api(settings={"web": {"max_body_kb": 4}})
    http = server.http
    bad = http.post("/turns", content=b'{"text": ', headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]
    assert http.post("/turns", json={}).status_code == 422
    assert http.post("/turns", json={"text": ""}).json()["error"].startswith("text:")
    huge = http.post("/turns", json={"text": "x" * 10_000})
    assert huge.status_code == 413 and "max_body_kb" in huge.json()["error"]

    def chunks():
        for _ in range(10):
            yield b"x" * 1000
    assert http.post("/turns", content=chunks(), headers={"Content-Type": "application/json"}).status_code == 413
    assert http.get("/turns/nope").status_code == 404 and "no such turn" in http.get("/turns/nope").json()["error"]
    assert http.post("/turns/nope/approvals/x", json={"answer": "yes"}).status_code == 404
    assert http.get("/nothing-here").json() == {"error": "Not Found"}
    assert server.session.store.history() == []

    with server.ws() as ws:
        for raw in ("not json", "[1, 2]", json.dumps({"type": "dance"}), json.dumps({"type": "turn", "text": " "}),
                    json.dumps({"type": "approve", "turn": "nope", "id": "x", "answer": "yes"})):
            ws.send(raw)
            reply = json.loads(ws.recv(timeout=10))
            assert reply["kind"] == "error" and reply["data"]["status"] in (400, 404) and reply["data"]["error"]
        ws.send(b"\x00binary")
        assert json.loads(ws.recv(timeout=10))["data"]["status"] == 400
        ws.send(json.dumps({"type": "turn", "text": "still there?"}))  # the connection goes on
        assert tokens(receive_turn(ws)) == "ok"
    assert [e["kind"] for e in server.turn("and over REST?")][-1] == "end"
    assert [r["content"] for r in server.session.store.history()] == ["still there?", "ok", "and over REST?", "ok"]


def receive_turn(ws) -> list[dict]:
    events = []
    while not events or events[-1]["kind"] != "end":
        events.append(json.loads(ws.recv(timeout=60)))
    return events


def test_thoughts_and_answer_stream_over_the_websocket(api):
    server = api(["<think>1. 3 + 5\n2. check: 8</think>The answer is 8 (八)."], settings={"reasoning": {"mode": "on"}})
    with server.ws() as ws:
        ws.send(json.dumps({"type": "turn", "text": "3 + 5 は？"}))
        events = receive_turn(ws)
    kinds = [e["kind"] for e in events]
    assert "".join(e["data"] for e in events if e["kind"] == "thought") == "1. 3 + 5\n2. check: 8"
    assert tokens(events) == "The answer is 8 (八)."
    assert max(i for i, k in enumerate(kinds) if k == "thought") < kinds.index("token") < kinds.index("done")
    done = next(e["data"] for e in events if e["kind"] == "done")
    assert done["thought_tokens"] > 0 and done["reasoning"]["steps"] == 2
    row = server.session.store.history()[-1]
    assert (row["content"], row["reasoning"]) == ("The answer is 8 (八).", "1. 3 + 5\n2. check: 8")


def test_a_turn_goes_on_when_its_client_leaves(api):
    server = api(["Still answered."])
    with server.ws() as ws:
        ws.send(json.dumps({"type": "turn", "text": "are you there?"}))
        turn = json.loads(ws.recv(timeout=10))["turn"]
    deadline = time.monotonic() + 60
    while not server.http.get(f"/turns/{turn}").json()["finished"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [r["content"] for r in server.session.store.history()] == ["are you there?", "Still answered."]


def test_approval_round_trip_over_the_websocket(api, tmp_path):
    server = api([{"tool": "run_command", "args": {"command": "echo made > out.txt"}}, "Done: out.txt made."])
    with server.ws() as ws:
        ws.send(json.dumps({"type": "turn", "text": "make out.txt"}))
        events = []
        while not events or events[-1]["kind"] != "approval":
            events.append(json.loads(ws.recv(timeout=60)))
        request = events[-1]["data"]
        assert request["tool"] == "run_command" and request["args"] == {"command": "echo made > out.txt"}
        assert not (tmp_path / "work" / "out.txt").exists()
        waiting = server.http.get(f"/turns/{events[-1]['turn']}").json()["waiting"]
        assert [w["id"] for w in waiting] == [request["id"]]
        answer = {"type": "approve", "turn": events[-1]["turn"], "id": request["id"], "answer": "yes"}
        ws.send(json.dumps(answer))
        rest = receive_turn(ws)
        assert {"kind": "answered", "data": {k: answer[k] for k in ("turn", "id", "answer")}} in rest
        ws.send(json.dumps(answer))  # a second answer for the same request
        second = json.loads(ws.recv(timeout=10))
        assert second["kind"] == "error" and second["data"]["status"] == 409 and "already answered" in second["data"][
            "error"]
    late = server.http.post(f"/turns/{answer['turn']}/approvals/{request['id']}", json={"answer": "no"})
    assert late.status_code == 409 and "already answered: yes" in late.json()["error"]
    kinds = [e["kind"] for e in rest if "turn" in e]
    assert kinds.index("approved") < kinds.index("tool_result") < kinds.index("done")
    result = next(e["data"] for e in rest if e["kind"] == "tool_result")
    assert result["name"] == "run_command" and "exit code 0" in result["content"]
    assert (tmp_path / "work" / "out.txt").read_text().strip() == "made"
    assert tokens(rest) == "Done: out.txt made."


def test_approval_over_rest_during_a_streamed_turn(api, tmp_path):
    server = api([{"tool": "run_command", "args": {"command": "touch nope"}}, "Okay, I did not."])
    with server.http.stream("POST", "/turns", json={"text": "touch it"}) as response:
        events = []
        for event in streamed(response):
            events.append(event)
            if event["kind"] == "approval":
                route = f"/turns/{event['turn']}/approvals/{event['data']['id']}"
                assert server.http.post(route, json={"answer": "maybe"}).status_code == 400
                assert server.http.post(route, json={"answer": "no"}).json()["answer"] == "no"
    kinds = [e["kind"] for e in events]
    assert kinds.count("approval") == 1 and kinds[-1] == "end"
    assert next(e["data"] for e in events if e["kind"] == "approved")["answer"] == "no"
    assert "declined" in next(e["data"]["content"] for e in events if e["kind"] == "tool_result")
    assert not (tmp_path / "work" / "nope").exists()
    assert tokens(events) == "Okay, I did not."


def test_ctrl_c_while_an_approval_waits_stops_cleanly(api, tmp_path):
    """Ctrl-C (uvicorn's signal handler) while a turn waits for approval: the stream ends at once,
    the command is declined and does not run, the message is kept, the server stops."""
    server = api([{"tool": "run_command", "args": {"command": "touch late"}}, "never said"])
    with server.http.stream("POST", "/turns", json={"text": "touch late"}) as response:
        events = []
        for event in streamed(response):
            events.append(event)
            if event["kind"] == "approval":
                server.server.handle_exit(signal.SIGINT, None)
    assert events[-1] == {"turn": events[0]["turn"], "seq": len(events) - 1, "kind": "end",
                          "data": {"stopped": "the server is stopping"}}
    server.thread.join(timeout=60)
    assert not server.thread.is_alive()
    assert not (tmp_path / "work" / "late").exists()
    rows = server.session.store.history()
    assert rows[0]["content"] == "touch late"
    assert ["declined" in r["content"] for r in rows if r["role"] == "tool"] == [True]


# ---------------------------------------------------------------- agent.py serve, real embedded model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def embedded_config(make_config, **web):
    return str(make_config({"llm": {"backend": "embedded", "max_tokens": 24},
                            "memory": {"enabled": False}, "web": web}))


def start_serve(home, cfg, port, *extra) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "agent.py"), "serve", "--config", cfg, "--port", str(port),
                             *extra], env=agent_env(home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines = []
    while not any("Ctrl-C stops" in line for line in lines):
        line = proc.stdout.readline()
        assert line, "serve ended early:\n" + "".join(lines)
        lines.append(line)
    return proc, "".join(lines)


def test_serve_beside_a_one_shot_turn_on_the_real_model(tmp_path, make_config):
    """`agent.py serve` on the embedded model: start-up lines, a turn over HTTP while `agent.py -m`
    sends one on the same session (both kept, in order, nothing forked), a taken port, Ctrl-C."""
    home, cfg, port = tmp_path / "home", embedded_config(make_config), free_port()
    proc, started = start_serve(home, cfg, port)
    try:
        assert f"API on http://127.0.0.1:{port}" in started and "embedded" in started
        assert str(home / "api_token") in started
        token = (home / "api_token").read_text().strip()
        assert token not in started

        taken = subprocess.run([sys.executable, str(ROOT / "agent.py"), "serve", "--config", cfg, "--port",
                                str(port)], check=False, env=agent_env(home), capture_output=True, text=True,
                               timeout=120)
        assert taken.returncode == 1 and taken.stdout == ""
        assert taken.stderr.strip().splitlines() == [(f"error: serve: port {port} on 127.0.0.1 is taken "
                                                      "(another server is using it); choose another with --port or "
                                                      "web.port")]

        one_shot = subprocess.Popen([sys.executable, str(ROOT / "agent.py"), "-m", "What is the capital of France?",
                                     "--config", cfg], env=agent_env(home), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
        with httpx.stream("POST", f"http://127.0.0.1:{port}/turns", json={"text": "Name a colour."},
                          headers={"Authorization": f"Bearer {token}"}, timeout=300) as response:
            events = sse(response)
        out, _ = one_shot.communicate(timeout=300)
        assert one_shot.returncode == 0, out
        assert "done" in [e["kind"] for e in events] and tokens(events).strip()
        assert not [e for e in events if e["kind"] == "error"]
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "stopped" in rest and "Traceback" not in rest

    rows = Store(str(home)).history()
    assert sorted(r["content"] for r in rows if r["role"] == "user") == ["Name a colour.",
                                                                        "What is the capital of France?"]
    assert [(r["turn"], r["role"]) for r in rows] == [(1, "user"), (1, "assistant"), (2, "user"), (2, "assistant")]
    assert all(r["content"].strip() for r in rows)
    assert tokens(events).strip() in [r["content"].strip() for r in rows if r["role"] == "assistant"]
    session = Session(Context(home=str(home), config=cfg))
    messages = session.messages()  # one thread, both turns, in the transcript's order
    assert [m.type for m in messages] == ["human", "ai", "human", "ai"]
    assert [m.text for m in messages[::2]] == [r["content"] for r in rows if r["role"] == "user"]


def test_serve_refuses_an_open_address_without_a_token(tmp_path, make_config):
    home = tmp_path / "home"
    refused = subprocess.run([sys.executable, str(ROOT / "agent.py"), "serve", "--host", "0.0.0.0", "--config",
                              embedded_config(make_config, auth=False)], check=False, env=agent_env(home),
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "refusing to listen on 0.0.0.0 without a token" in refused.stderr
    assert not os.path.exists(home / "api_token")
