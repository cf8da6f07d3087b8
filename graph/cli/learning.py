"""`agent.py learn` and the REPL's /learn: self-learning on or frozen, the user's standing
preferences (and undoing the newest), the learning log, and the learning at a glance that
`status` shows.

Owns: the command's parser and handler, and those layouts. Does not own: the freeze switch
and the log (learning.py), preferences (feedback.py), or rewrites (nodes/rewrite.py).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from graph.cli.args import count
from graph.cli.output import Out, Problem, handled, printable, when

if TYPE_CHECKING:
    from rich.console import Group
    from rich.text import Text

    from graph.context import Context
    from graph.store import Store


def add(sub, common: argparse.ArgumentParser, js: argparse.ArgumentParser) -> None:
    lrn = sub.add_parser("learn", parents=[common, js], help="self-learning on or frozen, and the learning log",
                         description="With no argument: whether self-learning is on, and what it changed lately.")
    lrn.add_argument("switch", nargs="?", choices=["on", "off", "undo"],
                     help="on: learn again; off: freeze all self-learning; undo: end the newest standing preference")
    lrn.add_argument("--last", type=count, default=10, metavar="N", help="learning-log entries to show (default 10)")
    lrn.set_defaults(run=run)


def state(ctx: Context, store: Store) -> str:
    """on, frozen (by the user) or off (learning.enabled in config.yaml)."""
    from graph import learning

    if not ctx.settings.learning.enabled:
        return "off"
    return "frozen" if learning.frozen(store) else "on"


def summary(ctx: Context, store: Store) -> dict:
    """The learning at a glance: state, prompt version serving, mean of the last 20 settled
    rewards, tuning examples. Reads only (no prompt version is created)."""
    from graph import monitor, reward, tuning

    values = monitor.recent_rewards(store)
    mean = reward.mean(values)
    return {"state": state(ctx, store), "prompt_version": monitor.prompt_version(store),
            "reward_avg": None if mean is None else round(mean, 3), "rewards": len(values),
            "examples": sum(tuning.counts(store).values()), "preferences": preferences(store),
            "extra_calls": extra_calls(ctx, store)}


def preferences(store: Store) -> list[dict]:
    """The standing preferences from the user's feedback, oldest first."""
    from graph import feedback

    return [{"key": key, "says": feedback.preference(key).says, "turn": p["turn"], "how": p["how"], "rule": p["rule"]}
            for key, p in feedback.standing(store).items() if feedback.preference(key)]


def extra_calls(ctx: Context, store: Store, last: int = 100) -> dict:
    """The learning loop's own model calls (prompt rewrites) over the last `last` answered turns,
    and their bound for the model that answered last: one per `learning.rewrite_every` turns at
    most, none while a version is on probation or learning is frozen, none from a model that is
    not asked to write rules (rewrite.asks_model: the embedded one by default)."""
    from graph.nodes.rewrite import asks_model

    rows = store.read("SELECT MIN(turn), COUNT(*) FROM (SELECT turn FROM rewards ORDER BY turn DESC LIMIT ?)", (last,))
    first, turns = rows[0] if rows else (None, 0)
    calls = store.read("SELECT COUNT(*) FROM learning_log WHERE kind='rewrite' AND turn >= ?", (first or 0,))[0][0]
    every = ctx.settings.learning.rewrite_every
    asked = asks_model(ctx, store.last_answer_meta().get("backend", ""))
    return {"calls": calls, "turns": turns, "per_turn": round(calls / turns, 3) if turns else 0.0,
            "bound": round(1 / every, 3) if every and asked else 0.0, "model_rewrites": asked}


def summary_line(info: dict) -> str:
    words = {"on": "on", "frozen": "frozen by you (`learn on` or /learn on resumes it)",
             "off": "off (learning.enabled in config.yaml)"}
    parts = [words[info["state"]], f"prompt version {info['prompt_version'] or '— (none yet)'}",
             "no settled rewards yet" if info["reward_avg"] is None else
             f"mean reward {info['reward_avg']:+.2f} over the last {info['rewards']} rated turns",
             f"{info['examples']} tuning examples"]
    calls = info.get("extra_calls")
    if calls and calls["turns"]:
        parts.append(f"{calls['calls']} extra model calls for learning in the last {calls['turns']} turns"
                     f" ({calls['per_turn']:.2f}/turn, at most {calls['bound']:.2f}"
                     f"{'' if calls['model_rewrites'] else ': this model is not asked to rewrite its prompt'})")
    return " · ".join(parts)


def switch(ctx: Context, off: bool) -> str:
    from graph import learning

    line = learning.freeze(ctx, off)
    if not off and not ctx.settings.learning.enabled:
        line += " (but learning.enabled is false in config.yaml, which keeps it off)"
    return line


def undo_preference(ctx: Context) -> str:
    """End the newest standing preference (`learn undo`, /learn undo)."""
    from graph import feedback

    try:
        return feedback.undo(ctx)
    except ValueError as exc:
        raise Problem(str(exc)) from None


def preferences_text(items: list[dict]) -> Text:
    from rich.text import Text

    if not items:
        return Text("standing preferences: none (repeated feedback such as 'too long' or 「表にして」 makes one)",
                    style="dim")
    text = Text.assemble(("standing preferences", "bold"), " (undo the newest: /learn undo or `agent.py learn undo`):")
    for p in items:
        text.append(f"\n  {p['says']} since turn {p['turn']} ({p['how']})" + (f"; rule: {p['rule']}" if p["rule"] else ""))
    return text


def learn_view(ctx: Context, store: Store, last: int = 10) -> Group:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from graph import learning

    info = summary(ctx, store)
    parts = [Text.assemble(("learning: ", "bold"), summary_line(info)), preferences_text(info["preferences"])]
    entries = learning.entries(store, last)
    if entries:
        table = Table("when", "what", "detail", box=None, pad_edge=False, title=f"learning log (last {len(entries)})",
                      title_justify="left", title_style="bold")
        for e in entries:
            table.add_row(when(e["created"]), e["kind"], printable(e["detail"]))
        parts.append(table)
    else:
        parts.append(Text("learning log: empty", style="dim"))
    return Group(*parts)


def run(args: argparse.Namespace, ctx: Context, console) -> int:
    return handled(command, args, ctx, console)


def command(args, ctx: Context, out: Out, store: Store) -> None:
    from rich.text import Text

    from graph import learning

    if args.switch == "undo":
        line = undo_preference(ctx)
        out({**summary(ctx, store), "undone": line}, Text(line))
    elif args.switch:
        line = switch(ctx, args.switch == "off")
        out(summary(ctx, store), line)
    else:
        out({**summary(ctx, store), "log": learning.entries(store, args.last)}, learn_view(ctx, store, args.last))
