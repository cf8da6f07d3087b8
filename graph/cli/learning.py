"""`agent.py learn` and the REPL's /learn: self-learning on or frozen, the user's standing
preferences (and undoing the newest), the learning log, and the learning at a glance that
`status` shows.

Owns: the command's parser and handler, and those layouts. Does not own: the actions
(actions/learning.py), the freeze switch and the log (learning/guard.py) or preferences (feedback.py).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from graph.actions import learning as act
from graph.cli.args import count
from graph.cli.output import Out, handled, printable, when

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

    info = act.overview(ctx, store, last)
    parts = [Text.assemble(("learning: ", "bold"), summary_line(info)), preferences_text(info["preferences"])]
    entries = info["log"]
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

    if args.switch == "undo":
        line = act.undo_preference(ctx)
        out({**act.summary(ctx, store), "undone": line}, Text(line))
    elif args.switch:
        line = act.switch(ctx, args.switch == "off")
        out(act.summary(ctx, store), line)
    else:
        out(act.overview(ctx, store, args.last), learn_view(ctx, store, args.last))
