"""The turn log: one JSON line per turn (latencies, tokens, backend, errors) in
DATA/logs/agent.log, rotated by size (monitoring.log_max_mb, monitoring.log_backups),
read by `python agent.py metrics [--follow]`.

Owns: writing, reading and following that file. Does not own: the transcript (store.py,
every message) or live metrics (monitor.py).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from graph.context import Context

FIELDS = ("turn", "backend", "model", "ttft_s", "tok_s", "tokens", "seconds", "context_tokens",
          "thought_tokens", "interrupted", "error")


def path(home: str | Path) -> Path:
    return Path(home) / "logs" / "agent.log"


def _logger(ctx: Context) -> logging.Logger:
    log = logging.getLogger(f"agent.turns.{ctx.home}")
    if not log.handlers:
        path(ctx.home).parent.mkdir(parents=True, exist_ok=True)
        m = ctx.settings.monitoring
        handler = logging.handlers.RotatingFileHandler(path(ctx.home), maxBytes=int(m.log_max_mb * 2**20),
                                                       backupCount=m.log_backups, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log


def log_turn(ctx: Context, turn: int | None, meta: dict, error: str = "") -> None:
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "turn": turn, "pid": os.getpid()}
    record.update({k: meta[k] for k in FIELDS if meta.get(k) is not None})
    if error:
        record["error"] = error
    _logger(ctx).info(json.dumps(record, ensure_ascii=False))


def read(home: str | Path, last: int = 20) -> list[dict]:
    """The last `last` records (from the current file)."""
    file = path(home)
    if not file.exists():
        return []
    with file.open(encoding="utf-8") as f:
        return [_parse(line) for line in deque(f, maxlen=last) if line.strip()]


def follow(home: str | Path, last: int = 0, poll_s: float = 0.5) -> Iterator[dict]:
    """The last `last` records, then new ones as they are written (across rotations) until
    interrupted. A log that does not exist yet is read from its start once it appears."""
    file = path(home)
    handle, inode = None, None
    if file.exists():
        handle, inode = file.open(encoding="utf-8"), file.stat().st_ino
        earlier = deque(handle, maxlen=last) if last else ()  # read to the end: what follows is new
        if not last:
            handle.seek(0, 2)
        for line in earlier:  # (a seek after these would skip records written while they print)
            if line.strip():
                yield _parse(line)
    while True:
        if handle is None and file.exists():
            handle, inode = file.open(encoding="utf-8"), file.stat().st_ino
        if handle is not None:
            line = handle.readline()
            if line.strip():
                yield _parse(line)
                continue
            if not file.exists() or file.stat().st_ino != inode:  # rotated: read the new file from its start
                handle.close()
                handle = None
                continue
        time.sleep(poll_s)


def _parse(line: str) -> dict:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return {"error": f"unreadable log line: {line.strip()[:200]}"}


def describe(record: dict) -> str:
    """One log record for people."""
    parts = [record.get("time", "?"), f"turn {record.get('turn', '?')}"]
    if record.get("backend"):
        parts.append(f"{record['backend']} ({record.get('model', '?')})")
    for key, fmt in (("ttft_s", "first token {} s"), ("tok_s", "{} tok/s"), ("tokens", "{} tokens"),
                     ("seconds", "{} s in all"), ("context_tokens", "context {}"), ("thought_tokens", "thought {}")):
        if record.get(key) is not None:
            parts.append(fmt.format(record[key]))
    for key in ("interrupted", "error"):
        if record.get(key):
            parts.append(f"{key.upper()}: {record[key]}")
    return " · ".join(parts)
