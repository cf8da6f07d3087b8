"""`agent.py data` and the REPL's /data: the tuning examples listed, shown, added by the
user, deleted, and exported as JSON lines for TRL (sft, kto, dpo).

Owns: the command's parser and handler, and the layouts of examples and their counts.
Does not own: the actions, which log each change (actions/examples.py), or the examples
(tuning.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from graph.actions import examples as act
from graph.cli.args import count
from graph.cli.output import Out, Problem, handled, one_line, printable, when

if TYPE_CHECKING:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from graph.context import Context
    from graph.learning import tuning
    from graph.store import Store


def add(sub, common: argparse.ArgumentParser, js: argparse.ArgumentParser) -> None:
    d = sub.add_parser("data", parents=[common, js], help="the tuning data: list, show, add, rm, export (sft, kto, dpo)",
                       description="With no action: every tuning example, newest first, and the counts.")
    acts = d.add_subparsers(dest="action", metavar="ACTION")
    dl = acts.add_parser("list", parents=[common, js], help="the examples, newest first, and the counts")
    dl.add_argument("--label", choices=["desirable", "undesirable"])
    dl.add_argument("--split", choices=["train", "eval"])
    dl.add_argument("--source", choices=["auto", "agent", "user"])
    dl.add_argument("--last", type=count, metavar="N", help="only the newest N")
    acts.add_parser("show", parents=[common, js], help="one example in full").add_argument("id", type=count, metavar="ID")
    da = acts.add_parser("add", parents=[common, js], help="add an example: a turn's answer, or a question and answer")
    da.add_argument("--turn", type=count, metavar="N", help="the turn whose answer becomes the example")
    da.add_argument("--user", metavar="TEXT", help="the user's message (with --answer)")
    da.add_argument("--answer", metavar="TEXT", help="the assistant's answer (with --user)")
    da.add_argument("--label", required=True, choices=["desirable", "undesirable"])
    da.add_argument("--why", metavar="TEXT", help="the reason, kept with the example")
    acts.add_parser("rm", parents=[common, js], help="delete an example").add_argument("id", type=count, metavar="ID")
    de = acts.add_parser("export", parents=[common], help="JSON lines for TRL: sft (messages), kto, dpo (pairs)")
    de.add_argument("--format", required=True, choices=["sft", "kto", "dpo"])
    de.add_argument("--split", choices=["train", "eval"], help="only this split (default: both)")
    de.add_argument("--out", metavar="FILE", help="write to FILE (default: stdout)")
    d.set_defaults(run=run)

    def one_example(args) -> None:
        by_hand = args.user is not None or args.answer is not None
        if (args.turn is not None) == by_hand or (by_hand and None in (args.user, args.answer)):
            da.error("give --turn N, or both --user TEXT and --answer TEXT")

    da.set_defaults(check=one_example)


def examples_table(items: list[tuning.Example], width: int = 60) -> Table | Text:
    from rich.table import Table
    from rich.text import Text

    if not items:
        return Text("no tuning examples (they come from clearly good or bad answers, the agent, and `agent.py data add`)",
                    style="dim")
    table = Table("id", "label", "split", "source", "reward", "turn", "question → answer", box=None, pad_edge=False)
    for e in items:
        table.add_row(str(e.id), Text(e.label, style="green" if e.label == "desirable" else "red"), e.split, e.source,
                      "—" if e.reward is None else f"{e.reward:+.2f}", "—" if e.turn is None else str(e.turn),
                      f"{one_line(e.question, width // 2)} → {one_line(e.answer, width)}")
    return table


def counts_text(counts: dict[str, int]) -> Text:
    from rich.text import Text

    from graph.learning import tuning

    if not counts:
        return Text("0 tuning examples", style="dim")
    parts = []
    for label in tuning.LABELS:
        here = {k.split("/")[1]: n for k, n in counts.items() if k.startswith(label + "/")}
        if here:
            parts.append(f"{label}: " + ", ".join(f"{n} {split}" for split, n in sorted(here.items(), reverse=True)))
    return Text(f"{sum(counts.values())} tuning examples · " + " · ".join(parts), style="dim")


def examples_view(store: Store, items: list[tuning.Example]) -> Group:
    from rich.console import Group

    from graph.learning import tuning

    return Group(examples_table(items), counts_text(tuning.counts(store)))


def example_view(e: tuning.Example) -> Group:
    from rich.console import Group
    from rich.text import Text

    parts = [Text.assemble((f"example #{e.id}", "bold"), " · ",
                           (e.label, "green" if e.label == "desirable" else "red"),
                           f" · {e.split} · source {e.source} · reward "
                           + ("—" if e.reward is None else f"{e.reward:+.2f}")
                           + (f" · turn {e.turn}" if e.turn is not None else "") + f" · {when(e.created)}")]
    if e.why:
        parts.append(Text("why: " + printable(e.why), style="dim"))
    for m in e.messages:
        parts.append(Text.assemble((f"{m['role']}: ", "bold cyan" if m["role"] == "user" else "bold green"
                                    if m["role"] == "assistant" else "bold dim"), printable(m["content"])))
    return Group(*parts)


def run(args: argparse.Namespace, ctx: Context, console) -> int:
    return handled(command, args, ctx, console)


def command(args, ctx: Context, out: Out, store: Store) -> None:
    action = args.action or "list"
    if action == "export":
        export(store, args.format, args.split, args.out)
    elif action == "list":
        items = act.listing(store, getattr(args, "label", None), getattr(args, "split", None),
                               getattr(args, "source", None), getattr(args, "last", None))
        out([e.as_dict() for e in items], examples_view(store, items))
    elif action == "show":
        found = act.get(store, args.id)
        out(found.as_dict(), example_view(found))
    elif action == "add":
        found = act.add(ctx, args.label, args.turn, args.user or "", args.answer or "", args.why or "")
        out(found.as_dict(), f"added example #{found.id} ({found.label}, {found.split} split)")
    else:
        found = act.remove(ctx, args.id)
        out(found.as_dict(), f"removed example #{found.id} ({found.label}: {one_line(found.question, 60)})")


def export(store: Store, fmt: str, split: str | None, path: str | None) -> None:
    """JSON lines in a TRL trainer's format, to stdout or a file (UTF-8 either way)."""
    records = act.export(store, fmt, split)
    if path is None:
        if hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(encoding="utf-8")  # training files are UTF-8 whatever the console's code page
        for record in records:
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        return
    n = 0
    try:
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
                n += 1
    except OSError as exc:
        raise Problem(f"{path}: cannot write it ({exc.strerror})") from None
    print(f"wrote {n} {fmt} records to {path}", file=sys.stderr)
