"""`agent.py memory`: list, search, add, forget and consolidate long-term memories, and the
memories' layout, which the REPL's /memory prints too.

Owns: the command's parser and handler, and laying out memories for people.
Does not own: the actions (actions/memory.py) or the memories and their index (memory/memories.py).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from graph.cli.args import count
from graph.cli.output import Problem, fail, printable

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

    from graph.context import Context


def add(sub, common: argparse.ArgumentParser, js: argparse.ArgumentParser) -> None:
    mem = sub.add_parser("memory", parents=[common, js], help="long-term memory: list, search, add, forget, consolidate",
                         description="With no action: the active memories, newest first.")
    mem.set_defaults(run=memory)
    acts = mem.add_subparsers(dest="action", metavar="ACTION")
    ml = acts.add_parser("list", parents=[common, js], help="the memories, newest first")
    ml.add_argument("--all", action="store_true", help="also superseded, merged, forgotten and dropped ones")
    ml.add_argument("--last", type=count, metavar="N", help="only the newest N")
    ms = acts.add_parser("search", parents=[common, js], help="memories (and old turns) relevant to TEXT")
    ms.add_argument("text", help="what to look for (any language the embedding model knows)")
    ma = acts.add_parser("add", parents=[common, js], help="remember TEXT (as the user: it is kept as said)")
    ma.add_argument("text", help="the memory")
    ma.add_argument("--type", default="fact", choices=["fact", "preference", "decision", "result", "note"],
                    help="what kind of memory (default: fact)")
    ma.add_argument("--importance", type=int, default=4, choices=range(1, 6), metavar="1-5", help="default 4")
    ma.add_argument("--pin", action="store_true", help="never let it fade or be dropped")
    mf = acts.add_parser("forget", parents=[common, js], help="forget the memory with this id")
    mf.add_argument("id", help="its id (or a unique beginning of it), as `memory list` shows")
    acts.add_parser("consolidate", parents=[common, js],
                    help="merge related memories into summaries (with the model) and drop faded ones")


def memory(args: argparse.Namespace, ctx: Context, console) -> int:
    from graph.actions import memory as act

    args.json = getattr(args, "json", False)
    try:
        if args.action == "consolidate":
            report = act.consolidate(ctx)
            print(json.dumps(report) if args.json else
                  f"merged {report['merged']} memories into {report['summaries']} summaries; "
                  f"dropped {report['dropped']} faded ones")
            return 0
        if args.action == "add":
            found, what = act.add(ctx, args.text, args.type, args.importance / 5, pinned=args.pin)
            rows = [found]
            note = {"merged": "already known: strengthened", "superseded": "remembered; it replaces an older one"}
            if not args.json:
                console.print(f"{note.get(what, 'remembered')}: [{found['id']}] {found['text']}", highlight=False,
                              markup=False)
                return 0
        elif args.action == "forget":
            rows = [act.forget(ctx, args.id)]
            if not args.json:
                console.print(f"forgot [{rows[0]['id']}] {rows[0]['text']}", highlight=False, markup=False)
                return 0
        elif args.action == "search":
            found = act.search(ctx, args.text)
            if args.json:
                print(json.dumps(found, ensure_ascii=False, indent=1))
                return 0
            console.print(memory_table(found["memories"], empty="no matching memories"))
            for t in found["turns"]:
                console.print(f"turn {t['turn']} ({t['similarity']:.2f}): {' '.join(t['text'].split())[:200]}",
                              highlight=False, markup=False)
            return 0
        else:
            rows = act.listing(ctx, getattr(args, "all", False), getattr(args, "last", None))
            if not args.json:
                console.print(memory_table(rows))
                return 0
    except Problem as exc:
        return fail(str(exc))
    print(json.dumps(rows, ensure_ascii=False, indent=1))
    return 0


def memory_table(rows: list[dict], empty: str = "(no memories yet)") -> Table | Text:
    """Memories (Memory.as_dict() rows, with `strength` = importance after fading) as a table."""
    from rich.table import Table
    from rich.text import Text

    if not rows:
        return Text(empty, style="dim")
    table = Table("id", "type", "strength", "memory", box=None, pad_edge=False)
    for r in rows:
        strength = f"{r.get('strength', r['importance']):.2f}" + (" 📌" if r["pinned"] else "")
        text = printable(r["text"])
        if r["status"] != "active":
            text += f"  [{r['status']}" + (f" → {r['replaced_by']}" if r.get("replaced_by") else "") + "]"
        table.add_row(r["id"], r["type"], strength, text)
    return table
