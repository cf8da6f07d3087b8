"""LangGraph Studio on the real session: what the LangGraph server (`langgraph dev`, started
by `agent.py studio`) loads from langgraph.json besides the evolution graph.

The server takes only UUIDs for thread ids, so the session (thread `main` of the data folder's
SQLite checkpoints) is shown as one fixed UUID, SESSION_THREAD, which `app`'s lifespan creates
at start-up. `checkpointer` keeps that thread in the session's own SqliteSaver, its id renamed
both ways, and any other thread (an evolution run, a copy) in memory. `agent`, a graph factory,
runs the agent graph only on the session thread: each run holds the session's turn lock from
start to end (a REPL, -m or cron turn waits for it, and it waits for theirs), first repairs
what the CLI's recovery would (an upkeep left pending, a step cut short) unless an approval
waits, and afterwards prunes old checkpoints, indexes folded turns and starts a due
evolution run, as `Session.upkeep` does for the CLI. A state edit from
Studio takes the lock too; deleting the session's thread or checkpoints is refused. If the
session cannot be opened safely (a newer agent's schema, a corrupt or locked database), the
server does not start and serves nothing.

Owns: the session thread's id, the checkpointer, the agent graph's factory, creating the
thread at start-up and the check that the session opens safely. Does not own: the session
(session.py), the graphs (builder.py, evolution/graph.py) or starting the server (cli/studio.py).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from contextlib import asynccontextmanager, closing
from pathlib import Path

from filelock import FileLock
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph_sdk.runtime import ServerRuntime
from starlette.applications import Starlette

from graph.builder import builder
from graph.context import THREAD_ID, Context, serve
from graph.schema import MIGRATIONS
from graph.session import Session
from graph.store import DB_NAME, StoreError, explain

SESSION_THREAD = str(uuid.uuid5(uuid.NAMESPACE_URL, f"agent.py/session/{THREAD_ID}"))
ONE_SESSION = (f"the agent has one session: Studio shows it as thread {SESSION_THREAD}; "
               "run the agent graph there (other threads are for the evolution graph)")
KEPT = f"thread {SESSION_THREAD} is the agent's session: Studio cannot delete it or its checkpoints"

log = logging.getLogger(__name__)
# The server loads the checkpointer, the graph factory and the app separately, by import path:
# the session they share can only live here (opened once, by `checkpointer`, at start-up).
_session: Session | None = None


def open_session(ctx: Context) -> Session:
    """The session of ctx's data folder for the server, or a one-line StoreError (ConfigError
    for bad settings) when it cannot be opened safely."""
    path = Path(ctx.home) / DB_NAME
    if newer := _newer_migrations(path):
        raise StoreError(f"{path}: written by a newer version of the agent (migrations {', '.join(newer)}); "
                         "update the agent before serving this session to Studio. Nothing was changed.")
    session = Session(ctx)
    # held across the server's worker threads (taken in one, released in another)
    session.lock = FileLock(session.lock.lock_file, thread_local=False)
    return session


def _newer_migrations(path: Path) -> list[str]:
    """Migrations recorded in the database that this version does not know."""
    if not path.exists():
        return []
    try:
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)) as db:
            done = {row[0] for row in db.execute("SELECT name FROM migrations")}
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise StoreError(explain(path, exc)) from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(explain(path, exc)) from None
    return sorted(done - {name for name, _ in MIGRATIONS})


class SessionSaver(BaseCheckpointSaver):
    """The session thread in the session's SqliteSaver (as thread `main`), other threads in memory."""

    def __init__(self, saver: BaseCheckpointSaver):
        super().__init__(serde=saver.serde)
        self.saver = saver
        self.scratch = InMemorySaver()

    async def aget_tuple(self, config):
        if (inner := _inward(config)) is None:
            return await self.scratch.aget_tuple(config)
        return _outward(await asyncio.to_thread(self.saver.get_tuple, inner))

    async def aget(self, config):
        found = await self.aget_tuple(config)
        return found.checkpoint if found else None

    async def alist(self, config, *, filter=None, before=None, limit=None):
        if (inner := _inward(config)) is None:
            async for found in self.scratch.alist(config, filter=filter, before=before, limit=limit):
                yield found
            return
        found = await asyncio.to_thread(lambda: list(self.saver.list(inner, filter=filter, limit=limit,
                                                                      before=before and _inward(before))))
        for each in found:
            yield _outward(each)

    async def aput(self, config, checkpoint, metadata, new_versions):
        if (inner := _inward(config)) is None:
            return await self.scratch.aput(config, checkpoint, metadata, new_versions)
        return _renamed(await asyncio.to_thread(self.saver.put, inner, checkpoint, metadata, new_versions))

    async def aput_writes(self, config, writes, task_id, task_path=""):
        if (inner := _inward(config)) is None:
            return await self.scratch.aput_writes(config, writes, task_id, task_path)
        await asyncio.to_thread(self.saver.put_writes, inner, writes, task_id, task_path)

    async def adelete_thread(self, thread_id):
        if str(thread_id) == SESSION_THREAD:
            raise ValueError(KEPT)
        await self.scratch.adelete_thread(str(thread_id))


def _inward(config: RunnableConfig | None) -> RunnableConfig | None:
    """The session's own config for the session thread's, else None (another thread)."""
    configurable = (config or {}).get("configurable", {})
    if str(configurable.get("thread_id")) != SESSION_THREAD:
        return None
    return {**config, "configurable": {**configurable, "thread_id": THREAD_ID}}


def _renamed(config: RunnableConfig | None) -> RunnableConfig | None:
    configurable = (config or {}).get("configurable", {})
    if configurable.get("thread_id") != THREAD_ID:
        return config
    return {**config, "configurable": {**configurable, "thread_id": SESSION_THREAD}}


def _outward(found):
    return found and found._replace(config=_renamed(found.config), parent_config=_renamed(found.parent_config))


@asynccontextmanager
async def checkpointer():
    """The server's checkpointer (langgraph.json "checkpointer"): opens the session once."""
    global _session
    if _session is None:
        ctx = Context()
        serve(ctx)  # a run given no context, or one for this data folder, shares the session's services
        _session = await asyncio.to_thread(open_session, ctx)
    yield SessionSaver(_session.saver)


@asynccontextmanager
async def agent(config: RunnableConfig, runtime: ServerRuntime):
    """The agent graph (langgraph.json "graphs"): a run or a state edit on the session thread
    happens under the session's turn lock; a run on any other thread is refused."""
    writes = runtime.access_context in ("threads.create_run", "threads.update")
    on_session = str(config["configurable"].get("thread_id")) == SESSION_THREAD
    if not (writes and on_session):
        if runtime.access_context == "threads.create_run":
            raise ValueError(ONE_SESSION)
        yield builder
        return
    session = _session
    if runtime.access_context == "threads.create_run":
        await asyncio.to_thread(_check_home, session, runtime.context)
    await asyncio.to_thread(session.lock.acquire)
    try:
        await asyncio.to_thread(_settle, session)
        yield builder
    finally:
        await asyncio.to_thread(session.lock.release)
        await asyncio.to_thread(_upkeep, session)  # pruning, folded turns, a due evolution run


def _check_home(session: Session, context) -> None:
    """A run's context may name a data folder, but only the one this server serves."""
    home = context.get("home") if isinstance(context, dict) else getattr(context, "home", "")
    if home and Path(home).expanduser().resolve() != Path(session.ctx.home):
        raise ValueError(f"this server serves the session in {session.ctx.home}, not {home}")


def _settle(session: Session) -> None:
    """Before a run, under the lock: what the CLI's recovery does before a turn (finish an
    upkeep left pending, close a step cut short by a kill or a cancelled run), unless the
    session waits for an approval, which this run may be resuming."""
    if not session.graph.get_state(session.config).interrupts:
        for text in session.recover():
            log.info("session: %s", text)


def _upkeep(session: Session) -> None:
    for _, text in session.upkeep():
        log.info("session: %s", text)


@asynccontextmanager
async def _lifespan(_app):
    """Create the session thread in the server's list of threads (kept if it is there already)."""
    from langgraph_sdk import get_client

    await get_client().threads.create(thread_id=SESSION_THREAD, if_exists="do_nothing", graph_id="agent",
                                      metadata={"session": THREAD_ID})
    yield


app = Starlette(lifespan=_lifespan)  # langgraph.json "http": only its lifespan; no routes of its own
