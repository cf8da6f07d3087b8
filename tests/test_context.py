"""The session's services on the Context (graph/context.py): built once per session, shared by
every Context made from it (a sub-agent's), closed with it; the one Context of a run given none;
and the session a server serves, whose services the Contexts it builds for its data folder share."""

import dataclasses
import sqlite3
from types import SimpleNamespace

import pytest

from fakes import ScriptedChat, install
from graph import context
from graph.context import Context
from graph.memory.memories import memories_of
from graph.models import llm


def test_a_derived_context_shares_the_sessions_services(tmp_path, make_config):
    ctx = Context(home=str(tmp_path / "home"), config=str(make_config({})))
    sub = dataclasses.replace(ctx, interactive=False, only_tools=("clock",))  # what `delegate` runs a sub-agent with
    assert sub.services is ctx.services and sub.store is ctx.store and sub.stop is ctx.stop
    install(ctx, ScriptedChat(replies=[]))
    assert llm.active(sub) is llm.active(ctx) and llm.active(ctx).model == "scripted"
    other = Context(home=ctx.home, config=ctx.config)  # another session on the same data folder
    assert other.store is not ctx.store and llm.active(other).model != "scripted"
    ctx.stop.set()  # Ctrl-C in this session
    assert sub.stop.is_set() and not other.stop.is_set()


def test_closing_the_services_closes_the_database_and_the_memory(tmp_path, make_config):
    ctx = Context(home=str(tmp_path / "home"), config=str(make_config({})))
    store, memories = ctx.store, memories_of(ctx)
    assert memories.store is store  # the memory writes through the session's one connection
    ctx.services.close()  # the session ends
    with pytest.raises(sqlite3.ProgrammingError):
        store.conn.execute("SELECT 1")
    assert ctx.store is not store and memories_of(ctx) is not memories  # opened again on next use
    assert ctx.store.turns() == 0


def test_a_run_without_a_context_gets_one_default(tmp_path):
    none = SimpleNamespace(context=None)  # what LangGraph passes a node when the run has no context
    assert context.of(none) is context.of(none)
    assert context.of(none).home == str(tmp_path / "home")  # AGENT_HOME (conftest)
    given = Context(home=str(tmp_path / "elsewhere"))
    assert context.of(SimpleNamespace(context=given)) is given


def test_contexts_built_for_the_served_data_folder_share_its_services(tmp_path, make_config):
    session = Context(home=str(tmp_path / "home"), config=str(make_config({})))
    context.serve(session)  # as studio.py does with the session it opens
    assert context.of(SimpleNamespace(context=None)) is session
    run = Context(**{"config": str(make_config({}, "run.yaml"))})  # as LangGraph's server builds it from a run's JSON
    assert run.services is session.services and run.store is session.store
    elsewhere = Context(home=str(tmp_path / "other"))
    assert elsewhere.services is not session.services
