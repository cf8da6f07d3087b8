"""The API's REST routes over the actions layer: history, status, rewards and ratings, memory,
prompt versions, tuning data and evolution, and the tools. Each route calls one action
(graph/actions; the tools' listing is graph/tools' own, as for `agent.py tools`) and only
translates: query and body in, the action's data out as JSON; a `Problem` becomes 400
(api.py's error handlers).

Owns: these routes' paths, parameters and bodies. Does not own: what the actions do, turns
and the WebSocket (api.py), auth (auth.py).
"""

from __future__ import annotations

import json
from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from graph.actions import evolution, examples, memory, prompt, rewards
from graph.actions import history as history_actions
from graph.actions import status as status_actions
from graph.session import Session
from graph.web.plain import plain


class RatingIn(BaseModel):
    kind: Literal["good", "bad", "rating"]
    stars: int | None = Field(None, ge=1, le=5, description="1-5, with kind rating")
    turn: int | None = Field(None, ge=1, description="the turn rated (default: the latest answer)")


class MemoryIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)
    kind: Literal[memory.KINDS] = "fact"
    importance: float = Field(0.8, ge=0, le=1)
    pinned: bool = False


class PromptIn(BaseModel):
    version: int | None = Field(None, ge=1, description="serve an earlier version's text again")
    text: str | None = Field(None, min_length=1, description="or a new prompt text")
    why: str = ""


class WhyIn(BaseModel):
    why: str = Field("", description="why (kept in the learning log)")


class ExampleIn(BaseModel):
    label: Literal["desirable", "undesirable"]
    turn: int | None = Field(None, ge=1, description="an exchange of the transcript (with its system prompt)")
    user: str = Field("", description="or a question written by hand")
    answer: str = Field("", description="the answer (with a turn: instead of its own)")
    why: str = ""


class EvolveIn(BaseModel):
    lora: bool = Field(False, description="also train and merge LoRA adapters")


def router(session: Session) -> APIRouter:
    ctx, store = session.ctx, session.store
    api = APIRouter()

    @api.get("/history", tags=["history"])
    def history(search: str = "", before: int | None = None, turns: int = Query(20, ge=1, le=1000),
                limit: int = Query(50, ge=1, le=1000)) -> dict:
        """A page of the conversation (the `turns` turns before turn `before`, the newest when absent;
        `before` in the answer pages further back), or with `search` the latest `limit` messages
        containing it."""
        if search:
            return {"messages": history_actions.search(store, search, limit), "before": None}
        return history_actions.page(store, before, turns)

    @api.get("/status", tags=["status"])
    def status() -> dict:
        """The session, model, memory, learning and machine at a glance (what `agent.py status` shows)."""
        return plain(status_actions.status(ctx, store, session.backend))

    @api.get("/rewards", tags=["learning"])
    def reward_report(last: int = Query(20, ge=1, le=10000)) -> dict:
        """The latest rewards, the reward curve, what the strategy policy learned, and what each
        reward component means."""
        return {"report": plain(rewards.report(store, last)), "curve": plain(rewards.curve(store)),
                "policy": plain(rewards.policy(store)), "meanings": rewards.MEANINGS}

    @api.post("/ratings", tags=["learning"])
    def rate(body: RatingIn) -> dict:
        """Rate an answer (the latest by default): good, bad, or 1-5 stars; returns its reward after."""
        return plain(rewards.rate(ctx, body.kind, body.stars, body.turn))

    @api.get("/memory", tags=["memory"])
    def memories(everything: bool = False, last: int | None = Query(None, ge=1)) -> list[dict]:
        """The active memories, newest first (everything: also superseded, merged and forgotten ones)."""
        return plain(memory.listing(ctx, everything, last))

    @api.get("/memory/search", tags=["memory"])
    def search_memory(q: str = Query(min_length=1), k: int = Query(10, ge=1, le=100),
                      turns: int = Query(3, ge=0, le=100)) -> dict:
        """The memories and old turns most relevant to `q`."""
        return plain(memory.search(ctx, q, k, turns))

    @api.post("/memory", tags=["memory"])
    def remember(body: MemoryIn) -> dict:
        """Remember a text; `what` says whether it was added, merged into a known one or superseded one."""
        row, what = memory.add(ctx, body.text, body.kind, body.importance, body.pinned)
        return {"memory": plain(row), "what": what}

    @api.delete("/memory/{memory_id}", tags=["memory"])
    def forget(memory_id: str) -> dict:
        """Forget a memory (its id or a unique beginning of it)."""
        return plain(memory.forget(ctx, memory_id))

    @api.get("/prompt", tags=["prompt"])
    def prompt_now(version: int | None = None) -> dict:
        """The system prompt version serving now (or version `version`), with its reward stats."""
        serving = prompt.current(ctx)
        return plain(prompt.version_dict(store, prompt.version(ctx, version), serving.id))

    @api.get("/prompt/versions", tags=["prompt"])
    def prompt_versions() -> list[dict]:
        """Every prompt version, oldest first: author, status (active, probation, retired, rolled_back), why."""
        serving = prompt.current(ctx).id
        return [plain(prompt.version_dict(store, v, serving)) for v in prompt.history(store)]

    @api.get("/prompt/diff", tags=["prompt"])
    def prompt_diff(a: int | None = None, b: int | None = None) -> dict:
        """A unified diff: the serving version against its parent, `a` against the serving one, or `a` against `b`."""
        pair = prompt.diff_pair(ctx, a, b)
        return {"from": pair[0].id if pair else None, "to": pair[1].id if pair else None, "diff": prompt.diff(pair)}

    @api.post("/prompt", tags=["prompt"])
    def set_prompt(body: PromptIn) -> dict:
        """Serve an earlier version again (`version`) or a new text (`text`), at once."""
        if (body.version is None) == (body.text is None):
            raise ValueError("give either version or text")
        made = prompt.set_prompt(ctx, body.version, body.text, body.why)
        return plain(prompt.version_dict(store, made, made.id))

    @api.post("/prompt/rollback", tags=["prompt"])
    def rollback_prompt(body: WhyIn) -> dict:
        """Undo the version serving now, back to its parent."""
        undone, back = prompt.rollback(ctx, body.why or "rolled back over the API")
        return {"undone": plain(undone), "serving": plain(back)}

    @api.get("/examples", tags=["tuning data"])
    def tuning_data(label: str | None = None, split: str | None = None, source: str | None = None,
                    last: int | None = Query(None, ge=1)) -> dict:
        """The tuning examples, newest first (filtered), and how many there are per label and split."""
        return {"examples": plain(examples.listing(store, label, split, source, last)),
                "counts": examples.counts(store)}

    @api.post("/examples", tags=["tuning data"])
    def add_example(body: ExampleIn) -> dict:
        """A new example: an exchange of the transcript (`turn`), or a question and answer written by hand."""
        return plain(examples.add(ctx, body.label, body.turn, body.user, body.answer, body.why))

    @api.delete("/examples/{example_id}", tags=["tuning data"])
    def remove_example(example_id: int, why: str = "") -> dict:
        """Delete an example; returns it."""
        return plain(examples.remove(ctx, example_id, why))

    @api.get("/examples/export", tags=["tuning data"], response_class=StreamingResponse,
             responses={200: {"content": {"application/x-ndjson": {}}}})
    def export(format: Literal["sft", "kto", "dpo"] = "sft", split: str | None = None) -> StreamingResponse:
        """The examples in a TRL trainer's format, one JSON record a line."""
        records = list(examples.export(store, format, split))  # errors before the response starts
        return StreamingResponse((json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                                 media_type="application/x-ndjson",
                                 headers={"Content-Disposition": f'attachment; filename="{format}.jsonl"'})

    @api.post("/evolution/runs", tags=["evolution"])
    def start_run(body: EvolveIn) -> dict:
        """Start an evolution run in the background; GET /evolution follows it."""
        return {"pid": evolution.start(ctx, "the user (API)", lora=body.lora)}

    @api.get("/evolution", tags=["evolution"])
    def evolution_status() -> dict:
        """The last run: its state, progress and decision ({} before the first run)."""
        return plain(evolution.status(store))

    @api.get("/evolution/runs", tags=["evolution"])
    def runs(last: int = Query(20, ge=1, le=1000)) -> list[dict]:
        """The latest runs, oldest first, with their summaries."""
        return plain(evolution.runs(store, last))

    @api.get("/evolution/lineage", tags=["evolution"])
    def lineage(run: int | None = None) -> dict:
        """A run's genomes as trees by parent (operator, fitness, status): run `run`, or the last one."""
        which, trees = evolution.lineage(store, run)
        return {"run": which, "lineage": plain(trees)}

    @api.post("/evolution/genomes/{genome_id}/promote", tags=["evolution"])
    def promote(genome_id: int) -> dict:
        """Make an archived genome serve now, on probation."""
        return {"done": evolution.promote(ctx, genome_id, "the user (API)")}

    @api.post("/evolution/rollback", tags=["evolution"])
    def rollback_evolved(body: WhyIn) -> dict:
        """Undo the prompt version evolution promoted (its evolved settings detached)."""
        undone, back = evolution.rollback(ctx, body.why or "rolled back over the API")
        return {"undone": plain(undone), "serving": plain(back)}

    @api.get("/tools", tags=["tools"])
    def tool_list() -> dict:
        """Every tool the agent can use (built-in, MCP, self-made) with its source, and the MCP servers."""
        from graph import tools
        from graph.tools import mcp

        warnings: list[str] = []
        return {"tools": tools.listing(ctx, warnings.append), "mcp_servers": mcp.servers(ctx), "warnings": warnings}

    return api
