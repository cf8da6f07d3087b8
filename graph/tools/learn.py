"""The agent's own learning as tools: its system prompt, its tuning data, its learning state.

The agent calls these when the user asks in plain words ("be more concise from now on",
「もっと短く答えて」, "remember this answer as a good example") or when it decides to.
Every change is self-modification (metadata acts="self"): while web or MCP content is in the
window it needs the user's yes (approval.py); nothing changes while learning is frozen or
turned off (guard.py); the agent's own prompt changes go on probation and are rolled back
if the reward falls. Expected failures are ToolExceptions.
Does not own: the actions, which log each change (graph/actions), the versions (selfprompt.py),
the examples (tuning.py) or the rewards (reward.py).
"""

from __future__ import annotations

import re
from typing import Literal

from langchain_core.tools import ToolException, tool
from langgraph.prebuilt import ToolRuntime

from graph.actions import Problem, examples, prompt, rewards
from graph.actions import learning as actions_learning
from graph.context import Context, of
from graph.learning import guard, selfprompt

WANTED = re.compile(r"\b(prompt|rules?|instructions?|from now on|always|never|examples?|tuning|learn\w*|"
                    r"(good|bad|great|wrong) answer)\b|プロンプト|ルール|指示|これから|今後|例として|学習", re.IGNORECASE)


def wanted(message: str) -> bool:
    """Whether the message is about the agent's prompt, its tuning examples or its learning: the
    embedded model is offered these tools only then (tools/__init__.py's asked_for)."""
    return bool(WANTED.search(message))


def context_of(runtime: ToolRuntime[Context], change: str = "") -> Context:
    """The tool call's Context; with `change`, refused (ToolException) while learning is frozen or off."""
    ctx = of(runtime)
    if change:
        try:
            guard.may_change(ctx, change)
        except guard.Refused as exc:
            raise ToolException(str(exc)) from None
    return ctx


def _propose(ctx: Context, text: str, why: str) -> str:
    try:
        version = prompt.propose(ctx, text, why)
    except Problem as exc:
        raise ToolException(str(exc)) from None
    return (f"Prompt version {version.id} is now in use, on probation for {ctx.settings.learning.probation_turns}"
            " rewarded turns (rolled back automatically if the user's reactions get worse).")


@tool
def show_prompt(runtime: ToolRuntime[Context]) -> str:
    """Show your own current system prompt (its version, status and learned rules)."""
    ctx = context_of(runtime)
    version = prompt.current(ctx)
    stats = prompt.version_dict(ctx.store, version, version.id)["stats"]
    mean = "no rewards yet" if stats["mean"] is None else f"mean reward {stats['mean']:+.2f} over {stats['turns']} turns"
    return f"Version {version.id} ({version.status}, by {version.author}; {mean}):\n{version.text}"


@tool
def add_prompt_rule(rule: str, why: str, runtime: ToolRuntime[Context]) -> str:
    """Add a rule to your own system prompt, e.g. when the user asks you to answer differently
    from now on ("be more concise", "answer in Japanese"). rule: one short imperative sentence."""
    ctx = context_of(runtime, "changing the system prompt")
    return _propose(ctx, selfprompt.with_rule(prompt.current(ctx).text, rule), why)


@tool
def rewrite_prompt(text: str, why: str, runtime: ToolRuntime[Context]) -> str:
    """Replace your own system prompt with a new full text (keep its first line, who you are).
    Prefer add_prompt_rule for a single change."""
    ctx = context_of(runtime, "changing the system prompt")
    return _propose(ctx, text, why)


@tool
def rollback_prompt(why: str, runtime: ToolRuntime[Context]) -> str:
    """Go back to the previous version of your system prompt (when the user dislikes a change)."""
    ctx = context_of(runtime, "rolling back the system prompt")
    try:
        undone, back = prompt.rollback(ctx, why or "asked to roll back", by="(agent tool)")
    except Problem as exc:
        raise ToolException(str(exc)) from None
    return f"Rolled back from version {undone.id} to version {back.id}."


@tool
def add_example(label: Literal["desirable", "undesirable"], why: str, runtime: ToolRuntime[Context],
                turn: int = 0, better_answer: str = "") -> str:
    """Keep an answer in your own tuning data: desirable (answer like this) or undesirable
    (never like this). turn: which turn (0 = your previous answer); better_answer: optionally
    the answer you should have given, kept as a desirable example instead."""
    ctx = context_of(runtime, "adding a tuning example")
    try:
        example = examples.add(ctx, "desirable" if better_answer.strip() else label,
                               turn or examples.latest_turn(ctx.store), answer=better_answer, why=why,
                               source="agent")
    except Problem as exc:
        raise ToolException(str(exc)) from None
    return f"Kept as {example.label} example #{example.id} ({example.split} split)."


@tool
def edit_example(example_id: int, runtime: ToolRuntime[Context], label: str = "", answer: str = "",
                 split: str = "", why: str = "") -> str:
    """Change one of your tuning examples: its label (desirable/undesirable), its answer text,
    or its split (train/eval). Empty arguments are left as they are."""
    ctx = context_of(runtime, "editing a tuning example")
    try:
        example = examples.edit(ctx, example_id, label or None, answer or None, split or None, why or None,
                                by="(agent tool)")
    except Problem as exc:
        raise ToolException(str(exc)) from None
    return f"Example #{example.id} is now {example.label} ({example.split})."


@tool
def delete_example(example_id: int, why: str, runtime: ToolRuntime[Context]) -> str:
    """Delete one of your tuning examples (e.g. it was wrongly labelled)."""
    ctx = context_of(runtime, "deleting a tuning example")
    try:
        example = examples.remove(ctx, example_id, why, by="(agent tool)")
    except Problem as exc:
        raise ToolException(str(exc)) from None
    return f"Deleted example #{example.id}."


@tool
def list_examples(runtime: ToolRuntime[Context], label: str = "", limit: int = 10) -> str:
    """List your tuning examples, newest first (label: desirable, undesirable or empty for both)."""
    ctx = context_of(runtime)
    found = examples.listing(ctx.store, label or None, last=max(1, min(50, limit)))
    lines = [f"#{e.id} {e.label} ({e.source}, {e.split}, reward {e.reward if e.reward is not None else '—'}):"
             f" Q: {e.question[:80]!r} A: {e.answer[:80]!r}" for e in found]
    return "\n".join(lines) or "No tuning examples yet."


@tool
def learning_status(runtime: ToolRuntime[Context]) -> str:
    """How your self-learning is going: recent rewards, the prompt version and its probation,
    what the strategy policy has learned, your tuning data, and whether learning is frozen."""
    ctx = context_of(runtime)
    store = ctx.store
    report = rewards.report(store, 20, settled_only=True)
    version = prompt.current(ctx)
    lines = [
        "learning: " + {"on": "on", "frozen": "frozen by the user", "off": "off in config.yaml"}[
            actions_learning.state(ctx, store)],
        "recent rewards: " + (", ".join(f"{r.reward:+.1f}" for r in report["rewards"]) or "none yet"),
        f"prompt: version {version.id} ({version.status})",
        "tuning data: " + (", ".join(f"{k} {v}" for k, v in examples.counts(store).items()) or "none"),
    ]
    for row in report["policy"]["arms"]:
        lines.append(f"policy {row['bucket']} {row['factor']}={row['arm']}: {row['mean']:+.2f} over {row['n']}")
    return "\n".join(lines)


for _t in (add_prompt_rule, rewrite_prompt, rollback_prompt, add_example, edit_example, delete_example):
    _t.metadata = {"acts": "self"}
TOOLS = [show_prompt, add_prompt_rule, rewrite_prompt, rollback_prompt, add_example, edit_example, delete_example,
         list_examples, learning_status]
