"""Monitoring end to end: the metrics collector without a GPU and with one (NVML stubbed both
ways, in this process and in the agent's: see tests/nogpu; the real NVML is only checked for
sane answers, whatever the machine has), the REPL status bar and the `monitor` dashboard on a
real terminal, `monitor --once/--json`, the Prometheus exporter scraped over loopback, and the
rotated turn log read with `metrics [--json] [--follow]`."""

import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import httpx
import pexpect
import psutil
import pynvml
import pytest
import yaml
from rich.console import Console

from conftest import ROOT, agent_env, settings_for_tests
from fakes import ScriptedChat, install
from graph import monitor, turnlog
from graph.actions import status as status_actions
from graph.cli import status as status_cli
from graph.context import Context
from graph.session import Session

AGENT = str(ROOT / "agent.py")
PROMPT = "›"
SP = r"(?:\s|\x1b\[[\d;]*m)+"  # blanks between a dashboard label and its value, styles included
FAST = settings_for_tests({"llm": {"backend": "embedded", "max_tokens": 32}, "agent": {"max_tool_rounds": 0},
                          "reasoning": {"mode": "off"}})
GB = 2**30
CARD = "NVIDIA GeForce RTX 4050 Laptop GPU"
REAL_NVML_INIT = pynvml.nvmlInit  # before conftest's fixture stubs it for every test


def agent(home, cfg, *args, timeout=60, check=True):
    out = subprocess.run([sys.executable, AGENT, "--home", str(home), "--config", str(cfg), *args],
                         capture_output=True, text=True, env=agent_env(home), timeout=timeout)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def render(renderable, width=120) -> str:
    with open(os.devnull, "w") as sink:
        console = Console(width=width, record=True, file=sink, color_system=None)
        console.print(renderable)
    return console.export_text()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
            reply.raise_for_status()
            return reply.text
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def metric(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    assert match, f"{name}{labels} not in the scrape:\n{text}"
    return float(match.group(1))


def wait_for(predicate, timeout=20.0, step=0.05):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(step)


def fake_snapshot(gpu=None, turns=7, tok_s=42.5, cpu=12.5) -> dict:
    return {"time": time.time(), "gpu": gpu or [],
            "system": {"cpu_percent": cpu, "ram_used": 3 * GB, "ram_total": 16 * GB, "process_rss": 100 * 2**20},
            "backend": {"name": "ollama", "model": "qwen2:7b-instruct", "ttft_s": 0.25, "tok_s": tok_s,
                        "tok_s_recent": [40.0, tok_s], "context_tokens": 900, "context_window": 8192,
                        "ollama_loaded": None},
            "agent": {"turns": turns, "db_bytes": 123456, "data": "/tmp/x", "reward_avg": None,
                      "reward_recent": [], "prompt_version": None, "memories": None}}


# ---------------------------------------------------------------- the GPU: real NVML, none, a stubbed card


def test_real_nvml_gives_sane_answers_with_or_without_a_gpu(monkeypatch):
    from graph.models import vram

    monkeypatch.setattr(pynvml, "nvmlInit", REAL_NVML_INIT)
    cards = monitor.gpu()
    for i, card in enumerate(cards):
        assert card["index"] == i and card["name"]
        assert 0 <= card["vram_used"] <= card["vram_total"] and 0 <= card["vram_free"] <= card["vram_total"]
    memory = vram.gpu_memory()
    assert (memory is None) == (cards == [])  # both see the same machine
    if memory:
        assert 0 <= memory[0] <= memory[1] == cards[0]["vram_total"]


def test_no_gpu(tmp_path, make_config):
    """NVML without a driver (conftest's stub, as on a machine without an NVIDIA GPU)."""
    assert monitor.gpu() == []
    assert monitor._nvml_ready is False  # the failed init is remembered, not retried every second
    assert monitor.gpu() == []
    ctx = Context(home=str(tmp_path / "home"), config=str(make_config(FAST)))
    install(ctx, ScriptedChat(replies=[]))
    s = Session(ctx)
    snap = monitor.snapshot(ctx, s.store, s.backend, cpu_interval=0.05)
    assert snap["gpu"] == []
    line = monitor.status_line(snap)
    assert "GPU none" in line and "VRAM" not in line and line.startswith("turn 0 · ")
    text = render(monitor.dashboard(snap, monitor.History()))
    assert "none (no NVIDIA GPU or driver)" in text
    history = monitor.History()
    history.add(snap)
    assert list(history.vram) == [None]
    assert status_actions.status(ctx, s.store, s.backend)["gpu"] == []


class Memory(SimpleNamespace):
    pass


@pytest.fixture
def nvml(monkeypatch):
    """A stubbed NVML presenting one RTX 4050 Laptop GPU (6 GB, 4.4 GB used, 37 %, 61 °C, one process)."""
    import pynvml

    monkeypatch.setattr(monitor, "_nvml_ready", None)  # gpu() caches the init result
    state = SimpleNamespace(inits=0, temp_error=False, cards=1)

    def init():
        state.inits += 1

    def temperature(handle, sensor):
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        if state.temp_error:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return 61

    used, total = int(4.4 * GB), 6 * GB
    monkeypatch.setattr(pynvml, "nvmlInit", init)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", lambda: state.cards)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", lambda i: f"handle{i}")
    monkeypatch.setattr(pynvml, "nvmlDeviceGetName", lambda h: CARD.encode())  # older bindings return bytes
    monkeypatch.setattr(pynvml, "nvmlDeviceGetMemoryInfo",
                        lambda h: Memory(used=used, total=total, free=total - used))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetUtilizationRates", lambda h: Memory(gpu=37, memory=20))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetTemperature", temperature)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetComputeRunningProcesses",
                        lambda h: [Memory(pid=4242, usedGpuMemory=int(4.2 * GB))])
    return state


def test_stubbed_gpu_snapshot_status_line_and_dashboard(nvml, tmp_path, make_config):
    cards = monitor.gpu()
    assert cards == [{"index": 0, "name": CARD, "vram_used": int(4.4 * GB), "vram_total": 6 * GB,
                      "vram_free": 6 * GB - int(4.4 * GB), "util_percent": 37, "temp_c": 61,
                      "processes": [{"pid": 4242, "vram": int(4.2 * GB)}]}]
    monitor.gpu()
    assert nvml.inits == 1  # initialised once, not on every refresh

    ctx = Context(home=str(tmp_path / "home"), config=str(make_config(FAST)))
    install(ctx, ScriptedChat(replies=[]))
    s = Session(ctx)
    snap = monitor.snapshot(ctx, s.store, s.backend, cpu_interval=0.05)
    assert snap["gpu"] == cards
    line = monitor.status_line(snap)
    assert "VRAM 4.4 GB/6.0 GB" in line and "GPU none" not in line
    assert line.startswith("turn 0 · fake: scripted")  # the turn first: a narrow terminal cuts the end

    history = monitor.History()
    history.add(snap)
    assert list(history.vram) == [int(4.4 * GB)]
    text = render(monitor.dashboard(snap, history))
    assert CARD in text and "GPU 0" in text
    assert re.search(r"VRAM\s+4\.4 GB / 6\.0 GB", text)
    assert re.search(r"utilisation\s+37%", text) and re.search(r"temperature\s+61 °C", text)
    assert re.search(r"pid 4242\s+4\.2 GB", text)
    assert "none (no NVIDIA GPU" not in text

    info = status_actions.status(ctx, s.store, s.backend)  # `status --json` carries the same list
    assert info["gpu"] == cards
    assert f"{CARD}: 4.4 / 6.0 GB VRAM" in render(status_cli.status_table(info))


def test_stubbed_gpu_partial_data_is_shown_as_a_dash(nvml):
    nvml.temp_error = True
    nvml.cards = 2
    cards = monitor.gpu()
    assert [c["index"] for c in cards] == [0, 1]
    assert all(c["temp_c"] is None and c["util_percent"] == 37 and c["vram_used"] == int(4.4 * GB) for c in cards)
    text = render(monitor.dashboard(fake_snapshot(gpu=cards)))
    assert re.search(r"temperature\s+—", text) and "°C" not in text
    assert re.search(r"utilisation\s+37%", text) and "GPU 1" in text


# ---------------------------------------------------------------- snapshot of a session, sparklines


def test_snapshot_of_a_session_after_three_turns(tmp_path, make_config):
    ctx = Context(home=str(tmp_path / "home"), config=str(make_config(FAST)))
    model = ScriptedChat(replies=["one two three four", "five six seven eight nine", "ten eleven twelve"])
    install(ctx, model, context_window=1000)
    s = Session(ctx)
    for i in range(3):
        events = list(s.turn(f"question {i}"))
        assert "done" in dict(events)
    last = s.store.last_answer_meta()
    snap = monitor.snapshot(ctx, s.store, s.backend, cpu_interval=0.05)
    b, a, sysm = snap["backend"], snap["agent"], snap["system"]
    assert (b["name"], b["model"], b["context_window"]) == ("fake", "scripted", 1000)
    assert b["ttft_s"] == last["ttft_s"] and b["tok_s"] == last["tok_s"] and last["tokens"] == 3
    assert b["context_tokens"] == last["context_tokens"] > 0
    assert len(b["tok_s_recent"]) == 3 and b["tok_s_recent"][-1] == last["tok_s"]
    assert b["ollama_loaded"] is None  # not an Ollama backend: not asked
    assert a["turns"] == 3 and a["db_bytes"] > 0 and a["data"] == ctx.home
    assert 0 <= sysm["cpu_percent"] <= 100 and 0 < sysm["ram_used"] <= sysm["ram_total"]
    assert sysm["process_rss"] > 10 * 2**20
    json.dumps(snap)  # `monitor --json` prints it as is
    line = monitor.status_line(snap)
    assert f"ctx {last['context_tokens']}/1000" in line and line.startswith("turn 3 · ")
    assert f"first token {last['ttft_s']:.2f} s" in line
    text = render(monitor.dashboard(snap))
    assert re.search(r"turns\s+3", text) and re.search(rf"context\s+{last['context_tokens']} / 1000 tokens", text)


def test_sparkline_edge_cases():
    assert monitor.sparkline([]) == ""
    assert monitor.sparkline([None, None]) == ""
    flat = monitor.sparkline([5.0, 5.0, 5.0])
    assert len(flat) == 3 and len(set(flat)) == 1
    rising = monitor.sparkline([1, 2, 3, 4, 5, 6, 7, 8])
    assert rising == "▁▂▃▄▅▆▇█"
    assert monitor.sparkline([0, None, 10]) == "▁█"  # gaps (answers without a speed) are skipped
    assert monitor.sparkline(list(range(100)), width=30) == monitor.sparkline(list(range(70, 100)))
    assert len(monitor.sparkline(list(range(100)), width=30)) == 30
    assert monitor.sparkline([-3.0, 0.0, 3.0]) == "▁▄█"


# ---------------------------------------------------------------- `monitor` on the command line


@pytest.fixture(scope="module")
def two_turns(tmp_path_factory):
    """A data folder with two real turns of the embedded model, and its fast config."""
    root = tmp_path_factory.mktemp("two_turns")
    home, cfg = root / "home", root / "config.yaml"
    cfg.write_text(yaml.safe_dump(FAST), encoding="utf-8")
    for text in ("Hello!", "What is 2 + 2?"):
        agent(home, cfg, "-m", text)
    return home, cfg


def test_monitor_once_and_json(two_turns):
    home, cfg = two_turns
    data = json.loads(agent(home, cfg, "monitor", "--json").stdout)
    assert set(data) == {"time", "gpu", "system", "backend", "agent"}
    assert data["gpu"] == []
    assert set(data["system"]) >= {"cpu_percent", "ram_used", "ram_total", "process_rss"}
    b = data["backend"]
    assert b["name"] == "embedded" and b["model"].startswith("SmolLM2") and b["context_window"] == 4096
    assert b["ttft_s"] > 0 and b["tok_s"] > 0 and 0 < b["context_tokens"] < 4096
    assert len(b["tok_s_recent"]) == 2
    assert data["agent"]["turns"] == 2 and data["agent"]["db_bytes"] > 0 and data["agent"]["data"] == str(home)

    out = agent(home, cfg, "monitor", "--once").stdout
    assert "agent monitor ·" in out
    for title in ("model", "GPU", "system", "agent"):
        assert re.search(rf"─ {title} ─", out), title
    assert "embedded (SmolLM2-135M-Instruct Q4_1)" in out
    assert re.search(rf"first token\s+{b['ttft_s']:.2f} s", out)
    assert re.search(rf"tokens/s\s+{b['tok_s']:.1f}", out)
    assert re.search(r"context\s+\d+ / 4096 tokens", out)
    assert "none (no NVIDIA GPU or driver)" in out
    assert re.search(r"turns\s+2\b", out) and str(home) in out

    status = json.loads(agent(home, cfg, "status", "--json").stdout)
    assert status["gpu"] == [] and status["turns"] == 2


def test_live_monitor_refreshes_and_sees_another_process(tmp_path, make_config):
    home = tmp_path / "home"
    cfg = make_config({**FAST, "monitoring": {"refresh_s": 0.2}})
    env = dict(agent_env(home), TERM="xterm")
    child = pexpect.spawn(sys.executable, [AGENT, "--config", str(cfg), "monitor"], env=env,
                          encoding="utf-8", timeout=30, dimensions=(50, 120))
    try:
        child.expect(r"agent monitor · (\d\d:\d\d:\d\d)")
        first = child.match.group(1)
        child.expect(rf"turns{SP}0\b")
        child.expect_exact("none (no NVIDIA GPU or driver)")
        while True:  # it refreshes: the clock moves on
            child.expect(r"agent monitor · (\d\d:\d\d:\d\d)")
            if child.match.group(1) != first:
                break
        agent(home, cfg, "-m", "Hello from another terminal")
        child.expect(rf"first token{SP}\d+\.\d\d s")  # the other process's turn shows up
        child.expect(rf"turns{SP}1\b")
        child.sendintr()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before


# ---------------------------------------------------------------- the REPL status bar


def expect_answering_cpr(child, pattern: str) -> None:
    """Expect `pattern`, answering prompt_toolkit's cursor position requests on the way: it draws
    the bottom toolbar only once it knows the rows below the cursor (a real terminal answers)."""
    while child.expect([pattern, re.escape("\x1b[6n")]) == 1:
        child.send("\x1b[10;1R")


def test_repl_status_bar(tmp_path, make_config):
    home = tmp_path / "home"
    cfg = make_config({**FAST, "monitoring": {"refresh_s": 0.2}})
    env = dict(agent_env(home), TERM="xterm")  # CPR on, answered below
    child = pexpect.spawn(sys.executable, [AGENT, "--config", str(cfg)], env=env, encoding="utf-8",
                          timeout=30, dimensions=(40, 200))
    bar = r"GPU none · CPU \d+%  RAM [\d.]+ GB/[\d.]+ GB"
    try:
        expect_answering_cpr(child, PROMPT)
        expect_answering_cpr(child, r"turn 0 · embedded: SmolLM2-135M-Instruct Q4_1 · " + bar)
        child.sendline("Hello!")
        expect_answering_cpr(child, r"embedded · first token [\d.]+ s")
        expect_answering_cpr(child, PROMPT)
        time.sleep(0.6)  # the bar's thread has taken a new snapshot by now
        child.send("\x0c")  # Ctrl-L: a full redraw (otherwise only the changed characters are written)
        expect_answering_cpr(child, r"turn 1 · embedded: SmolLM2-135M-Instruct Q4_1 · (\d+ tok/s · )?first token"
                                    r" [\d.]+ s · ctx \d+/4096 · " + bar)
        child.sendline("/quit")
        expect_answering_cpr(child, pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


# ---------------------------------------------------------------- Prometheus


def test_prometheus_endpoint_in_process(nvml, tmp_path, make_config):
    port = free_port()
    cfg = make_config({**FAST, "monitoring": {"prometheus_port": port}})
    ctx = Context(home=str(tmp_path / "home"), config=str(cfg))
    assert ctx.settings.monitoring.prometheus_port == port
    calls = []

    def collect():
        calls.append(1)
        return fake_snapshot(gpu=monitor.gpu(), turns=7 + len(calls))

    monitor.serve_prometheus(ctx.settings.monitoring.prometheus_port, collect)
    text = scrape(port)
    assert metric(text, "agent_turns") == 8  # collected fresh at each scrape
    assert metric(text, "agent_tokens_per_second") == 42.5
    assert metric(text, "agent_cpu_percent") == 12.5
    assert metric(text, "agent_ttft_seconds") == 0.25
    assert metric(text, "agent_context_window_tokens") == 8192
    assert metric(text, "agent_gpu_vram_used_bytes", '{gpu="0"}') == int(4.4 * GB)
    assert metric(text, "agent_gpu_vram_total_bytes", '{gpu="0"}') == 6 * GB
    assert metric(text, "agent_gpu_utilization_percent", '{gpu="0"}') == 37
    assert metric(text, "agent_gpu_temperature_celsius", '{gpu="0"}') == 61
    assert metric(httpx.get(f"http://127.0.0.1:{port}/metrics").text, "agent_turns") == 9

    others = [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
              if a.family == socket.AF_INET and not a.address.startswith("127.")]
    if others:  # served on loopback only
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://{others[0]}:{port}/metrics", timeout=2)


def test_prometheus_without_gpu_or_speed_leaves_those_metrics_out():
    port = free_port()
    snap = fake_snapshot(tok_s=None)
    snap["backend"]["ttft_s"] = None
    monitor.serve_prometheus(port, lambda: snap)
    text = scrape(port)
    assert metric(text, "agent_turns") == 7
    assert not re.search(r"^agent_tokens_per_second ", text, re.M)
    assert not re.search(r"^agent_ttft_seconds ", text, re.M)
    assert not re.search(r"^agent_gpu_vram_used_bytes\{", text, re.M)


def test_prometheus_served_by_the_monitor_process(two_turns, tmp_path):
    home, _ = two_turns
    port = free_port()
    cfg = tmp_path / "prom.yaml"
    cfg.write_text(yaml.safe_dump({**FAST, "monitoring": {"prometheus_port": port, "refresh_s": 0.5}}))
    proc = subprocess.Popen([sys.executable, AGENT, "--home", str(home), "--config", str(cfg), "monitor"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=agent_env(home))
    try:
        text = scrape(port)
        assert metric(text, "agent_turns") == 2
        assert metric(text, "agent_tokens_per_second") > 0
        assert metric(text, "agent_ttft_seconds") > 0
        assert metric(text, "agent_context_window_tokens") == 4096
        assert 0 <= metric(text, "agent_cpu_percent") <= 100
        assert metric(text, "agent_process_rss_bytes") > 10 * 2**20
        assert not re.search(r"^agent_gpu_vram_used_bytes\{", text, re.M)  # no GPU (tests/nogpu)
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def busy_port():
    """A loopback port already taken (by another terminal's exporter, say)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_monitor_keeps_running_when_the_prometheus_port_is_taken(tmp_path, make_config, busy_port):
    """A REPL already serves the exporter: `monitor` in another terminal still shows the dashboard."""
    home = tmp_path / "home"
    cfg = make_config({**FAST, "monitoring": {"prometheus_port": busy_port, "refresh_s": 0.2}})
    child = pexpect.spawn(sys.executable, [AGENT, "--config", str(cfg), "monitor"], env=dict(agent_env(home), TERM="xterm"),
                          encoding="utf-8", timeout=20, dimensions=(50, 120))
    try:
        assert child.expect([r"agent monitor · \d\d:\d\d:\d\d", "Traceback", pexpect.EOF]) == 0, child.before
        child.sendintr()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_repl_opens_when_the_prometheus_port_is_taken(tmp_path, make_config, busy_port):
    """Several terminals share the session; the second REPL must not crash on the exporter's port."""
    home = tmp_path / "home"
    cfg = make_config({**FAST, "monitoring": {"prometheus_port": busy_port}})
    env = dict(agent_env(home), PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm")
    child = pexpect.spawn(sys.executable, [AGENT, "--config", str(cfg)], env=env, encoding="utf-8",
                          timeout=20, dimensions=(40, 200))
    try:
        assert child.expect([PROMPT, "Traceback", pexpect.EOF]) == 0, child.before
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


# ---------------------------------------------------------------- the turn log


def test_turns_and_errors_are_logged(two_turns, tmp_path):
    home, cfg = two_turns
    out = agent(home, cfg, "metrics", "--json").stdout
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["turn"] for r in records] == [1, 2]
    for r in records:
        assert r["backend"] == "embedded" and r["model"].startswith("SmolLM2")
        assert r["ttft_s"] > 0 and r["tokens"] > 0 and r["seconds"] >= r["ttft_s"] and r["context_tokens"] > 0
        assert "error" not in r and isinstance(r["pid"], int) and r["time"]

    text = agent(home, cfg, "metrics").stdout.splitlines()
    assert len(text) == 2
    assert re.search(r"turn 2 · embedded \(SmolLM2-135M-Instruct Q4_1\) · first token [\d.]+ s · .*\d+ tokens", text[1])
    assert agent(home, cfg, "metrics", "--json", "--last", "1").stdout.count("\n") == 1

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**FAST, "llm": {"backend": "ollama", "max_tokens": 32,
                                                   "ollama": {"base_url": f"http://127.0.0.1:{free_port()}",
                                                              "connect_timeout_s": 1}}}))
    err_home = tmp_path / "err"
    failed = agent(err_home, bad, "--backend", "ollama", "-m", "Hello?", check=False)
    assert failed.returncode == 1 and "not reachable" in failed.stderr
    [record] = [json.loads(line) for line in agent(err_home, bad, "metrics", "--json").stdout.splitlines()]
    assert record["turn"] == 1 and "not reachable" in record["error"]
    assert "ERROR: Ollama is not reachable" in agent(err_home, bad, "metrics").stdout


def test_no_log_yet(tmp_path, make_config):
    home = tmp_path / "home"
    out = agent(home, make_config(FAST), "metrics")
    assert "no turns logged yet" in out.stdout


def test_the_log_rotates_and_keeps_log_backups_files(tmp_path, make_config):
    home = tmp_path / "home"
    ctx = Context(home=str(home), config=str(make_config({"monitoring": {"log_max_mb": 0.0005, "log_backups": 2}})))
    meta = {"backend": "embedded", "model": "m", "ttft_s": 0.1, "tok_s": 50.0, "tokens": 20, "seconds": 0.5}
    for i in range(1, 41):
        turnlog.log_turn(ctx, i, meta)
    logs = home / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["agent.log", "agent.log.1", "agent.log.2"]
    for p in logs.iterdir():
        assert 0 < p.stat().st_size <= 0.0005 * 2**20
    newest = turnlog.read(home, last=100)
    assert newest and newest[-1]["turn"] == 40 and newest[-1]["tokens"] == 20
    older = [json.loads(line) for line in (logs / "agent.log.1").read_text().splitlines()]
    assert older[-1]["turn"] == newest[0]["turn"] - 1  # nothing lost between the files


def test_log_records_keep_only_known_fields():
    record = turnlog.describe({"time": "T", "turn": 3, "backend": "ollama", "model": "q", "ttft_s": 0.5,
                               "interrupted": "stopped by the user"})
    assert record == "T · turn 3 · ollama (q) · first token 0.5 s · INTERRUPTED: stopped by the user"


class Follower:
    """`python agent.py metrics --json --follow` in a subprocess, its lines read with a timeout."""

    def __init__(self, home, cfg):
        self.home = home
        self.proc = subprocess.Popen([sys.executable, AGENT, "--home", str(home), "--config", str(cfg), "metrics",
                                      "--json", "--follow"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env=agent_env(home))
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.proc.stdout], daemon=True).start()

    def record(self, timeout: float = 15) -> dict:
        try:
            return json.loads(self.lines.get(timeout=timeout))
        except queue.Empty:
            raise AssertionError("no record printed by metrics --follow") from None

    def opened_the_log(self) -> bool:
        try:
            return str(turnlog.path(self.home)) in [f.path for f in psutil.Process(self.proc.pid).open_files()]
        except psutil.Error:
            return False

    def idle(self) -> bool:
        """Started up and now only polling (its CPU time stands still)."""
        process = psutil.Process(self.proc.pid)
        before = sum(process.cpu_times()[:2])
        time.sleep(0.3)
        return before > 0.2 and sum(process.cpu_times()[:2]) - before < 0.02

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def test_logs_follow_prints_new_records(tmp_path, make_config):
    home = tmp_path / "home"
    cfg = make_config(FAST)
    ctx = Context(home=str(home), config=str(cfg))
    turnlog.log_turn(ctx, 1, {"backend": "embedded", "tokens": 5})
    follower = Follower(home, cfg)
    try:
        assert follower.record()["turn"] == 1  # the existing record first
        wait_for(follower.opened_the_log)
        turnlog.log_turn(ctx, 2, {"backend": "embedded", "tokens": 7, "ttft_s": 0.2})
        record = follower.record()
        assert record["turn"] == 2 and record["tokens"] == 7 and record["ttft_s"] == 0.2
    finally:
        follower.stop()


def test_logs_follow_started_before_the_first_turn(tmp_path, make_config):
    """`logs --follow` opened on a fresh data folder prints the very first record once it is written."""
    home = tmp_path / "home"
    cfg = make_config(FAST)
    ctx = Context(home=str(home), config=str(cfg))
    follower = Follower(home, cfg)
    try:
        wait_for(follower.idle)  # started, waiting for the log to appear
        turnlog.log_turn(ctx, 1, {"backend": "embedded", "tokens": 5})
        turnlog.log_turn(ctx, 2, {"backend": "embedded", "tokens": 6})
        assert follower.record(timeout=5)["turn"] == 1
        assert follower.record(timeout=5)["turn"] == 2
    finally:
        follower.stop()


def test_logs_follow_across_a_rotation(tmp_path, make_config):
    home = tmp_path / "home"
    cfg = make_config({**FAST, "monitoring": {"log_max_mb": 0.0005, "log_backups": 3}})
    ctx = Context(home=str(home), config=str(cfg))
    turnlog.log_turn(ctx, 0, {"backend": "embedded"})
    follower = Follower(home, cfg)
    try:
        assert follower.record()["turn"] == 0
        wait_for(follower.opened_the_log)
        for i in range(1, 9):  # the file rotates every few records
            turnlog.log_turn(ctx, i, {"backend": "embedded", "tokens": i})
            time.sleep(0.2)
        assert (home / "logs" / "agent.log.1").exists()
        assert [follower.record()["turn"] for _ in range(8)] == list(range(1, 9))
    finally:
        follower.stop()
