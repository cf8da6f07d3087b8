"""Real-time metrics: GPU (NVML), CPU and RAM (psutil), the model backend and the agent,
as one snapshot dict; the REPL status bar line, the `monitor` dashboard and the optional
Prometheus exporter are all views of that snapshot.

Owns: collecting metrics cheaply enough to run every second, in any process that opens
the data folder (the dashboard works in another terminal while a REPL chats), and
rendering them. With no NVIDIA GPU or driver, GPU is "none" and nothing fails.
Does not own: choosing num_ctx from VRAM (vram.py) or the turn log (turnlog.py).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque

import psutil
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from graph.config import Settings
from graph.context import Context
from graph.learning import reward
from graph.models import ollama_client
from graph.store import Store

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None], width: int = 30, low: float | None = None,
              high: float | None = None) -> str:
    """The last `width` values as bars, scaled to their own range or to [low, high]."""
    points = [v for v in values if v is not None][-width:]
    if not points:
        return ""
    low = min(points) if low is None else low
    high = max(points) if high is None else high
    span = (high - low) or 1.0
    return "".join(SPARK[max(0, min(7, int((v - low) / span * 7.999)))] for v in points)


# Per process, not per session: NVML is initialised once for the whole process (pynvml's nvmlInit).
_nvml_lock = threading.Lock()
_nvml_ready: bool | None = None


def gpu() -> list[dict]:
    """One dict per NVIDIA GPU (name, VRAM, utilisation, temperature, processes); [] without one."""
    global _nvml_ready
    try:
        import pynvml
    except ImportError:
        return []
    with _nvml_lock:
        if _nvml_ready is None:
            try:
                pynvml.nvmlInit()
                _nvml_ready = True
            except pynvml.NVMLError:
                _nvml_ready = False
        if not _nvml_ready:
            return []
        cards = []
        try:
            for i in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
                card = {"index": i, "name": _text(pynvml.nvmlDeviceGetName(handle)),
                        "vram_used": memory.used, "vram_total": memory.total, "vram_free": memory.free}
                for key, call in (("util_percent", lambda: pynvml.nvmlDeviceGetUtilizationRates(handle).gpu),
                                  ("temp_c", lambda: pynvml.nvmlDeviceGetTemperature(handle, 0)),
                                  ("processes", lambda: [{"pid": p.pid, "vram": p.usedGpuMemory} for p in
                                                         pynvml.nvmlDeviceGetComputeRunningProcesses(handle)])):
                    try:
                        card[key] = call()
                    except pynvml.NVMLError:
                        card[key] = None  # not every card or driver reports everything
                cards.append(card)
        except pynvml.NVMLError:
            return []
        return cards


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def ollama_loaded(settings: Settings) -> list[dict] | None:
    """Models Ollama has loaded now (its `ps`), or None when it does not answer within half a second."""
    try:
        return [{"name": m.model, "size": m.size, "size_vram": m.size_vram}
                for m in ollama_client.client(settings, 0.5).ps().models]
    except ollama_client.ERRORS:
        return None


def prompt_version(store: Store) -> str | None:
    """The system prompt version serving now ("3", or "4 (probation)"), read from the prompts
    table without creating one (selfprompt.current() would); None before the first answer."""
    rows = store.read("SELECT id, status FROM prompts WHERE status IN ('active', 'probation') ORDER BY id DESC LIMIT 1")
    if not rows:
        return None
    return str(rows[0][0]) + (" (probation)" if rows[0][1] == "probation" else "")


def recent_rewards(store: Store, n: int = 20) -> list[float]:
    """The last `n` settled rewards, oldest first (the dashboard's curve and mean)."""
    return [round(r.reward, 3) for r in reward.recent(store, n)]


def snapshot(ctx: Context, store: Store, backend=None, cpu_interval: float | None = None) -> dict:
    """Every metric, now. `backend` is the active llm.Backend when this process has one.
    CPU use is measured since the previous call, or over `cpu_interval` seconds (one-off views)."""
    proc = psutil.Process(os.getpid())
    mem = psutil.virtual_memory()
    answers = store.recent_answers(30)
    last = answers[-1] if answers else {}
    window = backend.context_window if backend else None
    rewards = recent_rewards(store)
    mean = reward.mean(rewards)
    return {
        "time": time.time(),
        "gpu": gpu(),
        "system": {"cpu_percent": psutil.cpu_percent(cpu_interval), "ram_used": mem.total - mem.available,
                   "ram_total": mem.total, "process_rss": proc.memory_info().rss},
        "backend": {
            "name": backend.name if backend else None, "model": backend.model if backend else None,
            "ttft_s": last.get("ttft_s"), "tok_s": last.get("tok_s"),
            "tok_s_recent": [a.get("tok_s") for a in answers],
            "context_tokens": last.get("context_tokens"), "context_window": window,
            "ollama_loaded": ollama_loaded(ctx.settings)
            if backend is not None and backend.name == "ollama" else None,
        },
        "agent": {"turns": store.turns(), "db_bytes": store.size_bytes(), "data": ctx.home,
                  "reward_avg": None if mean is None else round(mean, 3), "reward_recent": rewards,
                  "prompt_version": prompt_version(store),
                  "memories": store.active_memories()},
    }


def _gb(n: int | None) -> str:
    return "—" if n is None else f"{n / 2**30:.1f} GB"


def status_line(snap: dict) -> str:
    """The REPL's one-line status bar."""
    b, s, cards = snap["backend"], snap["system"], snap["gpu"]
    parts = [f"turn {snap['agent']['turns']}", f"{b['name'] or '—'}: {b['model'] or '—'}"]
    if b["tok_s"]:
        parts.append(f"{b['tok_s']:.0f} tok/s")
    if b["ttft_s"] is not None:
        parts.append(f"first token {b['ttft_s']:.2f} s")
    if b["context_tokens"] and b["context_window"]:
        parts.append(f"ctx {b['context_tokens']}/{b['context_window']}")
    parts.append(f"VRAM {_gb(cards[0]['vram_used'])}/{_gb(cards[0]['vram_total'])}" if cards else "GPU none")
    parts.append(f"CPU {s['cpu_percent']:.0f}%  RAM {_gb(s['ram_used'])}/{_gb(s['ram_total'])}")
    return " · ".join(parts)


class History:
    """Values of the last minutes, for the dashboard's sparklines (VRAM is only known live)."""

    def __init__(self, size: int = 120):
        self.vram: deque = deque(maxlen=size)

    def add(self, snap: dict) -> None:
        self.vram.append(snap["gpu"][0]["vram_used"] if snap["gpu"] else None)


def dashboard(snap: dict, history: History | None = None) -> Group:
    """The `monitor` screen: backend, GPU, system and agent panels."""
    b, s, a = snap["backend"], snap["system"], snap["agent"]

    def table(rows: list[tuple[str, str]]) -> Table:
        t = Table(show_header=False, box=None, pad_edge=False)
        t.add_column(style="bold")
        t.add_column()
        for key, value in rows:
            t.add_row(key, Text(value))
        return t

    backend_rows = [("backend", f"{b['name'] or '—'} ({b['model'] or '—'})"),
                    ("first token", "—" if b["ttft_s"] is None else f"{b['ttft_s']:.2f} s"),
                    ("tokens/s", "—" if not b["tok_s"] else f"{b['tok_s']:.1f}  {sparkline(b['tok_s_recent'])}"),
                    ("context", "—" if not b["context_tokens"] else f"{b['context_tokens']} / {b['context_window']} tokens")]
    if b.get("ollama_loaded") is not None:
        loaded = ", ".join(f"{m['name']} ({_gb(m['size_vram'])} VRAM)" for m in b["ollama_loaded"]) or "none"
        backend_rows.append(("ollama loaded", loaded))
    if snap["gpu"]:
        gpu_rows = []
        for card in snap["gpu"]:
            vram = f"{_gb(card['vram_used'])} / {_gb(card['vram_total'])}"
            if history is not None and card["index"] == 0:
                vram += "  " + sparkline(list(history.vram))
            gpu_rows += [(f"GPU {card['index']}", card["name"]), ("VRAM", vram),
                         ("utilisation", "—" if card.get("util_percent") is None else f"{card['util_percent']}%"),
                         ("temperature", "—" if card.get("temp_c") is None else f"{card['temp_c']} °C")]
            for p in card.get("processes") or []:
                gpu_rows.append((f"  pid {p['pid']}", _gb(p["vram"])))
    else:
        gpu_rows = [("GPU", "none (no NVIDIA GPU or driver)")]
    system_rows = [("CPU", f"{s['cpu_percent']:.0f}%"), ("RAM", f"{_gb(s['ram_used'])} / {_gb(s['ram_total'])}"),
                   ("agent process", f"{s['process_rss'] / 2**20:.0f} MB")]
    agent_rows = [("turns", str(a["turns"])), ("database", f"{a['db_bytes'] / 2**20:.1f} MB"),
                  ("reward", "—" if a["reward_avg"] is None else
                   f"{a['reward_avg']:+.2f}  {sparkline(a['reward_recent'], low=-1.0, high=1.0)}"),
                  ("prompt version", str(a["prompt_version"] or "—")),
                  ("memories", "—" if a["memories"] is None else str(a["memories"])),
                  ("data folder", a["data"])]
    stamp = time.strftime("%H:%M:%S", time.localtime(snap["time"]))
    return Group(Text(f"agent monitor · {stamp} · Ctrl-C to leave", style="bold"),
                 Panel(table(backend_rows), title="model"), Panel(table(gpu_rows), title="GPU"),
                 Panel(table(system_rows), title="system"), Panel(table(agent_rows), title="agent"))


def serve_prometheus(port: int, collect) -> str:
    """Serve `collect()`'s snapshot as Prometheus metrics on 127.0.0.1:`port` (a daemon thread).
    Returns '' or, when the port cannot be used, one line saying so (the agent goes on)."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.core import GaugeMetricFamily

    class Collector:
        def collect(self):
            snap = collect()
            b, s, a = snap["backend"], snap["system"], snap["agent"]
            values = {
                "agent_turns": ("Turns in the session", a["turns"]),
                "agent_db_bytes": ("Size of the session database", a["db_bytes"]),
                "agent_ttft_seconds": ("Time to first token of the last answer", b["ttft_s"]),
                "agent_tokens_per_second": ("Generation speed of the last answer", b["tok_s"]),
                "agent_context_tokens": ("Tokens in the live window of the last answer", b["context_tokens"]),
                "agent_context_window_tokens": ("Context window of the backend", b["context_window"]),
                "agent_reward_mean": ("Mean reward of the last 20 settled turns", a["reward_avg"]),
                "agent_cpu_percent": ("System CPU use", s["cpu_percent"]),
                "agent_ram_used_bytes": ("System RAM in use", s["ram_used"]),
                "agent_process_rss_bytes": ("Resident memory of the agent process", s["process_rss"]),
            }
            for name, (doc, value) in values.items():
                if value is not None:
                    yield GaugeMetricFamily(name, doc, value=value)
            for name, key, doc in (("agent_gpu_vram_used_bytes", "vram_used", "VRAM in use"),
                                   ("agent_gpu_vram_total_bytes", "vram_total", "VRAM of the card"),
                                   ("agent_gpu_utilization_percent", "util_percent", "GPU utilisation"),
                                   ("agent_gpu_temperature_celsius", "temp_c", "GPU temperature")):
                family = GaugeMetricFamily(name, doc, labels=["gpu"])
                for card in snap["gpu"]:
                    if card.get(key) is not None:
                        family.add_metric([str(card["index"])], card[key])
                yield family

    registry = CollectorRegistry()
    registry.register(Collector())
    try:
        start_http_server(port, addr="127.0.0.1", registry=registry)
    except OSError as exc:
        return (f"Prometheus metrics not served: 127.0.0.1:{port} is not available ({exc.strerror}); "
                "another agent process may already serve them")
    return ""
