"""The data folder's SQLite database: schema migrations and the transcript.

Owns: opening `agent.db` (WAL mode) with clear errors for a corrupt or unwritable
file, applying the schema migrations (schema.py) in order, and the append-only transcript that keeps every
message ever exchanged (user, assistant with its reasoning, tool calls and results)
with turn ids. LangGraph's checkpoints live in the same file (tables owned by
`langgraph-checkpoint-sqlite`).
Does not own: the graph state (checkpointer), rendering (the front ends), or keeping one Store per
session (the session's services: `Context.store`, context.py).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from langchain_core.messages import BaseMessage

from graph.schema import MIGRATIONS

DB_NAME = "agent.db"


class StoreError(Exception):
    """The data folder or its database cannot be used; the message says which file and what to do."""


ROLES = {"human": "user", "ai": "assistant", "tool": "tool", "system": "system"}


def connect(path: Path, autocommit: bool = True) -> sqlite3.Connection:
    """Open a database in the data folder, turning OS/SQLite failures into a StoreError.
    `autocommit=False` gives Python's default transaction handling (what SqliteSaver expects)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False, timeout=30,
                               isolation_level=None if autocommit else "")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        # Checkpoint the write-ahead log every ~1 MB (SQLite's default is ~4 MB) and truncate
        # it back to that size, so a young data folder is not mostly log.
        conn.execute("PRAGMA wal_autocheckpoint=256")
        conn.execute(f"PRAGMA journal_size_limit={1 << 20}")
        return conn
    except sqlite3.DatabaseError as exc:
        raise StoreError(explain(path, exc)) from None
    except OSError as exc:
        raise StoreError(f"{path.parent}: cannot create the data folder ({exc.strerror}); "
                         "choose another with --home or AGENT_HOME") from None


def explain(path: Path, exc: Exception) -> str:
    text = str(exc)
    if "not a database" in text or "malformed" in text:
        return (f"{path}: the database is corrupt ({text}). Nothing was changed. Move the file "
                "aside to start a new one, or restore a backup from the data folder's backups/.")
    if "readonly" in text or "unable to open" in text:
        return (f"{path}: cannot write the database ({text}). Make the data folder writable, "
                "or choose another with --home or AGENT_HOME.")
    return f"{path}: {text}"


class Store:
    """The transcript and other tables of one data folder. Thread-safe."""

    def __init__(self, home: Path):
        self.path = Path(home) / DB_NAME
        self.conn = connect(self.path)
        self._lock = threading.Lock()
        try:
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(explain(self.path, exc)) from None

    @contextmanager
    def write(self):
        """One write transaction, taken at once (BEGIN IMMEDIATE) so processes never race."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def read(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Rows of one query (for the modules that own their own tables: memory, learning)."""
        with self._lock:
            return self.conn.execute(sql, args).fetchall()

    def _migrate(self) -> None:
        with self.write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied REAL)")
            done = {r[0] for r in db.execute("SELECT name FROM migrations")}
            for name, sql in MIGRATIONS:
                if name not in done:
                    for statement in filter(str.strip, sql.split(";")):
                        db.execute(statement)
                    db.execute("INSERT INTO migrations VALUES (?, ?)", (name, time.time()))

    def append(self, message: BaseMessage, meta: dict | None = None, turn_of: str | None = None,
               closes: bool = True) -> int | None:
        """Append one message (idempotent by message id). A user message opens a new turn
        (unless `turn_of` names one: a sub-agent's task joins its parent's turn); other
        messages join the turn of the user message `turn_of` (default: the latest); a final
        answer (an assistant message without tool calls) closes its turn unless `closes` is False."""
        role = ROLES.get(message.type, message.type)
        tool_calls = [{"id": c["id"], "name": c["name"], "args": c["args"]} for c in getattr(message, "tool_calls", [])]
        reasoning = message.additional_kwargs.get("reasoning_content")
        now = time.time()
        with self.write() as db:
            if message.id and db.execute("SELECT 1 FROM transcript WHERE msg_id=?", (message.id,)).fetchone():
                return None
            if role == "user" and not turn_of:
                turn = db.execute("SELECT COALESCE(MAX(turn), 0) + 1 FROM turns").fetchone()[0]
                db.execute("INSERT INTO turns (turn, msg_id, pid, started) VALUES (?,?,?,?)",
                           (turn, message.id, os.getpid(), now))
            else:
                row = db.execute("SELECT turn FROM turns WHERE msg_id=?", (turn_of,)).fetchone() if turn_of else None
                turn = row[0] if row else db.execute("SELECT COALESCE(MAX(turn), 0) FROM turns").fetchone()[0]
                if role == "assistant" and not tool_calls and closes:
                    db.execute("UPDATE turns SET status='done', ended=? WHERE turn=? AND status='open'", (now, turn))
            cur = db.execute(
                "INSERT INTO transcript (msg_id, turn, role, content, reasoning, tool_calls, tool_call_id, name, meta, created)"
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                (message.id, turn, role, message.text, reasoning or None,
                 json.dumps(tool_calls, ensure_ascii=False) if tool_calls else None,
                 getattr(message, "tool_call_id", None), message.name,
                 json.dumps(meta, ensure_ascii=False) if meta else None, now),
            )
            return cur.lastrowid

    def turn_of(self, msg_id: str) -> int | None:
        """The turn a user message opened."""
        with self._lock:
            row = self.conn.execute("SELECT turn FROM turns WHERE msg_id=?", (msg_id,)).fetchone()
        return row[0] if row else None

    def open_turns(self) -> list[dict]:
        """Turns begun but never answered: {turn, msg_id, pid, started}."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT turn, msg_id, pid, started FROM turns WHERE status='open' ORDER BY turn").fetchall()
        return [{"turn": t, "msg_id": m, "pid": p, "started": s} for t, m, p, s in rows]

    def close_turn(self, turn: int, why: str) -> None:
        """Mark an unanswered turn interrupted (its message stays in the transcript)."""
        with self.write() as db:
            db.execute("UPDATE turns SET status='interrupted', why=?, ended=? WHERE turn=? AND status='open'",
                       (why, time.time(), turn))

    def history(self, last: int | None = None) -> list[dict]:
        """Messages of the last `last` turns (all when None), oldest first."""
        sql = "SELECT id, turn, role, content, reasoning, tool_calls, tool_call_id, name, meta, created FROM transcript"
        args: tuple = ()
        if last is not None:
            sql += " WHERE turn > (SELECT COALESCE(MAX(turn), 0) FROM transcript) - ?"
            args = (last,)
        return self._rows(sql + " ORDER BY turn, id", args)

    def history_of(self, turn: int) -> list[dict]:
        """The messages of one turn, in order."""
        return self._rows("SELECT id, turn, role, content, reasoning, tool_calls, tool_call_id, name, meta, created"
                          " FROM transcript WHERE turn=? ORDER BY id", (turn,))

    def turn_times(self, turn: int) -> tuple[float | None, float | None]:
        """(started, ended) of a turn."""
        with self._lock:
            row = self.conn.execute("SELECT started, ended FROM turns WHERE turn=?", (turn,)).fetchone()
        return tuple(row) if row else (None, None)

    def search(self, text: str, limit: int = 50) -> list[dict]:
        """Messages containing `text` (case-insensitive for ASCII), newest last."""
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        sql = ("SELECT * FROM (SELECT id, turn, role, content, reasoning, tool_calls, tool_call_id, name, meta, created"
               " FROM transcript WHERE content LIKE ? ESCAPE '\\' OR reasoning LIKE ? ESCAPE '\\'"
               " ORDER BY id DESC LIMIT ?) ORDER BY turn, id")
        return self._rows(sql, (pattern, pattern, limit))

    def _rows(self, sql: str, args: tuple) -> list[dict]:
        with self._lock:
            rows = self.conn.execute(sql, args).fetchall()
        keys = ("id", "turn", "role", "content", "reasoning", "tool_calls", "tool_call_id", "name", "meta", "created")
        out = []
        for row in rows:
            item = dict(zip(keys, row))
            item["tool_calls"] = json.loads(item["tool_calls"]) if item["tool_calls"] else []
            item["meta"] = json.loads(item["meta"]) if item["meta"] else {}
            out.append(item)
        return out

    def turns(self) -> int:
        with self._lock:
            return self.conn.execute("SELECT COALESCE(MAX(turn), 0) FROM turns").fetchone()[0]

    def backup(self) -> Path:
        """A consistent copy of the database (SQLite online backup) in the data folder's backups/."""
        stamp = time.strftime("agent-%Y%m%d-%H%M%S")
        target = self.path.parent / "backups" / f"{stamp}.db"
        target.parent.mkdir(exist_ok=True)
        n = 1
        while target.exists():  # two backups in one second keep both
            n += 1
            target = target.with_name(f"{stamp}-{n}.db")
        copy = sqlite3.connect(target)
        try:
            with self._lock:
                self.conn.backup(copy)
        finally:
            copy.close()
        return target

    def last_reasoning(self) -> dict | None:
        """The latest assistant message that has reasoning, or None."""
        rows = self._rows("SELECT id, turn, role, content, reasoning, tool_calls, tool_call_id, name, meta, created"
                          " FROM transcript WHERE role='assistant' AND reasoning IS NOT NULL ORDER BY id DESC LIMIT 1", ())
        return rows[0] if rows else None

    def recent_answers(self, n: int) -> list[dict]:
        """Metrics of the last `n` answers, oldest first."""
        with self._lock:
            rows = self.conn.execute("SELECT meta FROM transcript WHERE role='assistant' AND meta IS NOT NULL"
                                     " AND tool_calls IS NULL ORDER BY id DESC LIMIT ?", (n,)).fetchall()
        return [json.loads(r[0]) for r in reversed(rows)]

    def last_answer_meta(self) -> dict:
        """Metrics of the latest assistant answer (backend, latency, speed), or {}."""
        with self._lock:
            row = self.conn.execute(
                "SELECT meta FROM transcript WHERE role='assistant' AND meta IS NOT NULL ORDER BY id DESC LIMIT 1"
            ).fetchone()
        return json.loads(row[0]) if row else {}

    def record_edit(self, path: str, before: bytes | None, after_sha: str, tool: str, keep: int) -> int:
        """Remember a file's previous content (None: it did not exist) for /undo; keeps the last `keep`."""
        with self.write() as db:
            cur = db.execute("INSERT INTO edits (path, before, after_sha, tool, created) VALUES (?,?,?,?,?)",
                             (path, before, after_sha, tool, time.time()))
            db.execute("DELETE FROM edits WHERE id NOT IN (SELECT id FROM edits ORDER BY id DESC LIMIT ?)", (keep,))
            return cur.lastrowid

    def last_edit(self) -> dict | None:
        """The latest edit not yet undone: {id, path, before, after_sha, tool, created}."""
        with self._lock:
            row = self.conn.execute("SELECT id, path, before, after_sha, tool, created FROM edits"
                                    " WHERE undone IS NULL ORDER BY id DESC LIMIT 1").fetchone()
        return dict(zip(("id", "path", "before", "after_sha", "tool", "created"), row)) if row else None

    def mark_undone(self, edit_id: int) -> None:
        with self.write() as db:
            db.execute("UPDATE edits SET undone=? WHERE id=?", (time.time(), edit_id))

    def approve(self, tool: str, pattern: str) -> None:
        """The user's "always" for this tool and pattern (for run_command: the exact command)."""
        with self.write() as db:
            db.execute("INSERT OR REPLACE INTO approvals VALUES (?,?,?)", (tool, pattern, time.time()))

    def approved(self, tool: str, pattern: str) -> bool:
        with self._lock:
            return self.conn.execute("SELECT 1 FROM approvals WHERE tool=? AND pattern=?",
                                     (tool, pattern)).fetchone() is not None

    def has_memories(self) -> bool:
        """Is there anything in long-term memory (memories, or turns indexed for search)?"""
        with self._lock:
            return self.conn.execute("SELECT EXISTS(SELECT 1 FROM memories WHERE status='active')"
                                     " OR EXISTS(SELECT 1 FROM memory_meta WHERE key='turns_indexed'"
                                     " AND CAST(value AS INTEGER) > 0)").fetchone()[0] == 1

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self.conn.execute("SELECT value FROM memory_meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value) -> None:
        with self.write() as db:
            db.execute("INSERT OR REPLACE INTO memory_meta VALUES (?, ?)", (key, str(value)))

    def active_memories(self) -> int:
        with self._lock:
            return self.conn.execute("SELECT COUNT(*) FROM memories WHERE status='active'").fetchone()[0]

    def memories_since(self, when: float, most: int) -> int:
        """Memories made (active or not) after `when` (a time.time()), counted up to `most`."""
        with self._lock:
            return self.conn.execute("SELECT COUNT(*) FROM (SELECT 1 FROM memories WHERE created > ? LIMIT ?)",
                                     (when, most)).fetchone()[0]

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.parent.glob(DB_NAME + "*") if p.is_file())


    def close(self) -> None:
        """Close the connection (the session ends)."""
        with self._lock:
            self.conn.close()
