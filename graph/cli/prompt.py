"""`agent.py prompt` and the REPL's /prompt: the agent's system prompt versions shown, listed,
compared, set by the user, or rolled back.

Owns: the command's parser and handler, and the layouts of versions, their history and
diffs. Does not own: the actions, which log each change (actions/prompt.py), or the
versions (selfprompt.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from graph.actions import prompt as act
from graph.cli.args import count
from graph.cli.output import Out, Problem, handled, printable, when

if TYPE_CHECKING:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from graph.context import Context
    from graph.learning import selfprompt
    from graph.store import Store


def add(sub, common: argparse.ArgumentParser, js: argparse.ArgumentParser) -> None:
    p = sub.add_parser("prompt", parents=[common, js], help="the agent's system prompt: show, history, diff, set, rollback",
                       description="With no action: the prompt version answering now.")
    acts = p.add_subparsers(dest="action", metavar="ACTION")
    ps = acts.add_parser("show", parents=[common, js], help="a prompt version in full (default: the one in use)")
    ps.add_argument("version", nargs="?", type=count, metavar="VERSION")
    acts.add_parser("history", parents=[common, js],
                    help="every version: status, author, why, outcome, mean reward")
    pd = acts.add_parser("diff", parents=[common, js],
                         help="what changed: the version in use against its parent, A against it, or A against B")
    pd.add_argument("a", nargs="?", type=count, metavar="A")
    pd.add_argument("b", nargs="?", type=count, metavar="B")
    pset = acts.add_parser("set", parents=[common, js], help="use an earlier version again, or a new text; active at once")
    pset.add_argument("version", nargs="?", type=count, metavar="VERSION", help="an earlier version to use again")
    pset.add_argument("--text", metavar="TEXT", help="the new prompt (keep its first line: who the agent is)")
    pset.add_argument("--file", metavar="FILE", help="read the new prompt from a UTF-8 file")
    pset.add_argument("--why", metavar="TEXT", help="the reason, kept in the history")
    pr = acts.add_parser("rollback", parents=[common, js], help="undo the version in use: back to its parent")
    pr.add_argument("--why", metavar="TEXT", help="the reason, kept in the history")
    p.set_defaults(run=run)

    def one_prompt(args) -> None:
        if sum(x is not None for x in (args.version, args.text, args.file)) != 1:
            pset.error("give exactly one of VERSION, --text TEXT or --file FILE")

    pset.set_defaults(check=one_prompt)


def _stats_text(stats: dict, short: bool = False) -> str:
    if stats["mean"] is None:
        return "—" if short else "no rewards yet"
    return f"{stats['mean']:+.2f} ({stats['turns']})" if short else \
        f"mean reward {stats['mean']:+.2f} over {stats['turns']} turns"


def version_view(store: Store, version: selfprompt.Version, serving: int) -> Group:
    from rich.console import Group
    from rich.text import Text

    from graph.learning import selfprompt

    head = Text.assemble((f"prompt version {version.id}", "bold"), f" · {version.status}",
                         " (serving now)" if version.id == serving else "", f" · by {version.author}",
                         f" · {when(version.created)} · {_stats_text(selfprompt.stats(store, version.id))}")
    parts = [head]
    if version.rationale:
        parts.append(Text("why: " + printable(version.rationale), style="dim"))
    if version.outcome:
        parts.append(Text("outcome: " + printable(version.outcome), style="dim"))
    parts.append(Text(printable(version.text)))
    return Group(*parts)


def history_table(store: Store, versions: list[selfprompt.Version], serving: int) -> Table:
    from rich.table import Table
    from rich.text import Text

    from graph.learning import selfprompt

    table = Table("id", "status", "author", "created", "reward (turns)", "why / outcome", box=None, pad_edge=False)
    style = {"active": "green", "probation": "yellow", "rolled_back": "red", "retired": "dim"}
    for v in versions:
        note = printable(v.rationale) + (f" → {printable(v.outcome)}" if v.outcome else "")
        table.add_row(("▶ " if v.id == serving else "  ") + str(v.id), Text(v.status, style=style.get(v.status, "")),
                      v.author, when(v.created), _stats_text(selfprompt.stats(store, v.id), short=True), note)
    return table


def diff_view(pair: tuple[selfprompt.Version, selfprompt.Version] | None) -> Text:
    from rich.text import Text

    if pair is None:
        return Text("this is the first prompt version: nothing to compare it with", style="dim")
    text = act.diff(pair)
    if not text:
        return Text(f"versions {pair[0].id} and {pair[1].id} have the same text", style="dim")
    out = Text()
    for line in map(printable, text.splitlines()):
        style = "bold" if line.startswith(("---", "+++")) else "green" if line.startswith("+") else \
            "red" if line.startswith("-") else "cyan" if line.startswith("@@") else ""
        out.append(line + "\n", style=style)
    out.rstrip()
    return out


def run(args: argparse.Namespace, ctx: Context, console) -> int:
    return handled(command, args, ctx, console)


def command(args, ctx: Context, out: Out, store: Store) -> None:
    action = args.action or "show"
    if action == "set":
        text = args.text
        if args.file:
            try:
                text = Path(args.file).read_text(encoding="utf-8")
            except OSError as exc:
                raise Problem(f"{args.file}: cannot read it ({exc.strerror})") from None
            except UnicodeDecodeError:
                raise Problem(f"{args.file}: not UTF-8 text") from None
        version = act.set_prompt(ctx, args.version, text, args.why or "")
        out(act.version_dict(store, version, version.id), f"prompt version {version.id} is active now (after version"
            f" {version.parent}); `agent.py prompt diff` shows the change")
        return
    if action == "rollback":
        undone, back = act.rollback(ctx, args.why or "rolled back by the user")
        out(act.version_dict(store, back, back.id), rolled_back(undone, back))
        return
    serving = act.current(ctx).id
    if action == "show":
        version = act.version(ctx, getattr(args, "version", None))
        out(act.version_dict(store, version, serving), version_view(store, version, serving))
    elif action == "history":
        versions = act.history(store)
        out([act.version_dict(store, v, serving) for v in versions], history_table(store, versions, serving))
    else:
        pair = act.diff_pair(ctx, args.a, args.b)
        out({"from": pair[0].id if pair else None, "to": pair[1].id if pair else serving, "diff": act.diff(pair)},
            diff_view(pair))


def rolled_back(undone: selfprompt.Version, back: selfprompt.Version) -> str:
    return f"rolled back prompt version {undone.id}; version {back.id} is serving again"
