#!/usr/bin/env python3
"""agent.py — a self-learning local AI agent in one endless conversation.

Usage: python agent.py [-m TEXT] [logs|history|status|tools|memory|reward|prompt|data|learn|undo|backup|monitor|metrics]
                       [--home DIR] [--config FILE] [--version]
Heavy libraries are imported only after the arguments are read, so --help is instant.
"""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """A local AI agent in one endless conversation. With no command it opens the
REPL (or reads one message per line from piped stdin); the same session continues
from any directory, kept in the data folder (default: data/ beside agent.py).
With -m, text piped to stdin is attached to the message: git diff | agent.py -m "review this"."""


def count(text: str) -> int:
    """A number of items for --last: 1 to a billion."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 10**9:
        raise argparse.ArgumentTypeError(f"must be from 1 to 1000000000, got {value}")
    return value


def minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of minutes, got {text!r}") from None
    if not 0 < value <= 1440:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 1440, got {value:g}")
    return value


def parse(argv: list[str]) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", metavar="DIR", default=argparse.SUPPRESS,
                        help="data folder (default: $AGENT_HOME, else data/ beside agent.py)")
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="settings file (default: config.yaml beside agent.py)")
    common.add_argument("--backend", choices=["auto", "ollama", "embedded"], default=argparse.SUPPRESS,
                        help="chat model: auto = Ollama, else the embedded model (default: from config)")
    common.add_argument("--think", choices=["auto", "on", "off"], default=argparse.SUPPRESS,
                        help="think visibly before answering: always, never, or when needed (default: from config)")
    from graph import __version__

    parser = argparse.ArgumentParser(prog="agent.py", description=DESCRIPTION, parents=[common])
    parser.add_argument("--version", action="version", version=f"agent.py {__version__}")
    parser.add_argument("-m", "--message", metavar="TEXT",
                        help="send one message (with piped stdin attached), print the answer, exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, more in (("logs", "; the same as history"), ("history", "")):
        h = sub.add_parser(name, parents=[common], help=f"the whole conversation since the first launch{more}")
        h.add_argument("--last", type=count, metavar="N", help="only the last N turns")
        h.add_argument("--search", metavar="TEXT", help="only messages containing TEXT (the latest 50)")
        h.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "logs":  # `logs --follow` followed the turn metrics before they became `metrics`
            h.add_argument("--follow", "-f", action="store_true", help=argparse.SUPPRESS)
    sub.add_parser("backup", parents=[common], help="write a consistent copy of the database to DATA/backups/")
    mon = sub.add_parser("monitor", parents=[common], help="live dashboard: model speed, GPU/VRAM, CPU/RAM, agent")
    mon.add_argument("--once", action="store_true", help="print one snapshot and exit")
    mon.add_argument("--json", action="store_true", help="one snapshot as JSON")
    lg = sub.add_parser("metrics", parents=[common], help="the turn metrics log: latencies, tokens, backend, errors")
    lg.add_argument("--last", type=count, default=20, metavar="N", help="how many records (default 20)")
    lg.add_argument("--follow", "-f", action="store_true", help="keep printing new records")
    lg.add_argument("--json", action="store_true", help="JSON lines")
    t = sub.add_parser("tools", parents=[common], help="list the tools (built-in, MCP, self-made); run or remove one",
                       description="With no action: every tool the agent can use, with its source.")
    t.add_argument("--json", action="store_true", help="machine-readable output")
    actions = t.add_subparsers(dest="action", metavar="ACTION")
    tr = actions.add_parser("run", parents=[common], help="run one tool directly, under the same approval rules")
    tr.add_argument("name", help="the tool's name (see `agent.py tools`)")
    tr.add_argument("args", nargs="?", default="{}", help="its arguments as a JSON object (default: {})")
    trm = actions.add_parser("remove", parents=[common], help="delete a self-made tool")
    trm.add_argument("name", help="the self-made tool's name")
    js = argparse.ArgumentParser(add_help=False)
    js.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    mem = sub.add_parser("memory", parents=[common, js], help="long-term memory: list, search, add, forget, consolidate",
                         description="With no action: the active memories, newest first.")
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
    checks = learning_commands(sub, common, js)
    u = sub.add_parser("undo", parents=[common], help="restore the file the agent edited last (its previous version)")
    u.add_argument("--force", action="store_true", help="restore even if the file was changed since the edit")
    ev = sub.add_parser("evolve", parents=[common, js],
                        help="evolve prompt, sampling and LoRA adapter variants (crossover, mutation, selection); lineage, promote",
                        description="With no option: one evolution run (progress, then a table per generation). "
                                    "Safe from cron while the REPL is open: one run at a time per data folder.")
    ev.add_argument("--generations", type=count, metavar="N", help="breeding rounds (default: evolution.generations)")
    ev.add_argument("--population", type=lambda v: max(2, count(v)), metavar="P", help="genomes per generation (default: evolution.population)")
    ev.add_argument("--budget-minutes", type=minutes, metavar="M", help="stop breeding after M minutes (default: config)")
    ev.add_argument("--lora", choices=["auto", "on", "off"],
                    help="LoRA adapters in this run: on = train and cross them (an error when it cannot), "
                         "off = prompts and sampling only (default: evolution.lora)")
    ev.add_argument("--background", action="store_true", help="run in a background process and return at once")
    ev.add_argument("--trigger", default="cli", choices=["cli", "cron", "auto", "tool"], help=argparse.SUPPRESS)
    shown = ev.add_mutually_exclusive_group()
    shown.add_argument("--runs", action="store_true", help="the runs so far, with their outcome")
    shown.add_argument("--lineage", type=count, nargs="?", const=0, metavar="RUN",
                       help="the family tree of a run's genomes (default: the last run)")
    shown.add_argument("--promote", type=count, metavar="GENOME", help="make this genome serve now (on probation)")
    shown.add_argument("--rollback", action="store_true", help="undo the prompt version evolution promoted")
    s = sub.add_parser("status", parents=[common], help="backend, model, data folder, turns, live metrics")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    checks.get((args.command, getattr(args, "action", None)), lambda _: None)(args)
    if args.command and args.message:
        parser.error("-m cannot be combined with a command")
    if args.message is not None and not args.message.strip():
        parser.error("-m needs a message (it was empty)")
    return args


def learning_commands(sub, common, js) -> dict:
    """`reward`, `prompt`, `data`, `learn`. Returns the checks argparse cannot express, by (command, action)."""
    r = sub.add_parser("reward", parents=[common, js], help="rewards of the answers, explained; the learned policy",
                       description="With no option: the last rewards, the reward curve and the learned strategy policy.")
    r.add_argument("--turn", type=count, metavar="N", help="explain turn N's reward component by component")
    r.add_argument("--last", type=count, default=20, metavar="N", help="how many rewards to list (default 20)")
    rate = r.add_mutually_exclusive_group()
    rate.add_argument("--good", action="store_true", help="rate the latest answer (or --turn N) as good")
    rate.add_argument("--bad", action="store_true", help="rate the latest answer (or --turn N) as bad")
    rate.add_argument("--rate", type=int, choices=range(1, 6), metavar="1-5", help="rate it from 1 to 5")
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
    lrn = sub.add_parser("learn", parents=[common, js], help="self-learning on or frozen, and the learning log",
                         description="With no argument: whether self-learning is on, and what it changed lately.")
    lrn.add_argument("switch", nargs="?", choices=["on", "off", "undo"],
                     help="on: learn again; off: freeze all self-learning; undo: end the newest standing preference")
    lrn.add_argument("--last", type=count, default=10, metavar="N", help="learning-log entries to show (default 10)")

    def one_prompt(args) -> None:
        if sum(x is not None for x in (args.version, args.text, args.file)) != 1:
            pset.error("give exactly one of VERSION, --text TEXT or --file FILE")

    def one_example(args) -> None:
        by_hand = args.user is not None or args.answer is not None
        if (args.turn is not None) == by_hand or (by_hand and None in (args.user, args.answer)):
            da.error("give --turn N, or both --user TEXT and --answer TEXT")

    return {("prompt", "set"): one_prompt, ("data", "add"): one_example}


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    from rich.console import Console

    console, errors = Console(), Console(stderr=True)
    from graph.context import ConfigError, Context
    from graph.embedded import EmbeddedModelMissing
    from graph.llama_process import ModelCrashed
    from graph.llm import BackendError
    from graph.store import StoreError

    ctx = Context(home=getattr(args, "home", ""), config=getattr(args, "config", ""),
                  backend=getattr(args, "backend", ""), think=getattr(args, "think", ""))
    try:
        return run(args, ctx, console)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            errors.print(f"[red]error:[/] {line}", highlight=False, soft_wrap=True)
        return 2
    except (BackendError, EmbeddedModelMissing, ModelCrashed, StoreError) as exc:
        errors.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 1


def run(args: argparse.Namespace, ctx, console) -> int:
    import json

    from pathlib import Path

    from graph.cli import repl, views

    if getattr(args, "follow", False) and args.command == "logs":
        print("error: `logs` is the conversation now; the turn metrics are `agent.py metrics --follow`",
              file=sys.stderr)
        return 2
    if args.command in ("history", "logs", "backup") and not Path(ctx.home).is_dir():
        ctx.settings  # noqa: B018 - a bad config is still reported first
        print(f"error: {ctx.home}: no data folder here yet, so no session to show (a first message creates it;"
              " check --home / AGENT_HOME)", file=sys.stderr)
        return 1

    if args.command in ("history", "logs"):
        from graph.store import store_for

        ctx.settings  # noqa: B018 - validate the config even for read-only commands
        store = store_for(ctx.home)
        rows = store.search(args.search) if args.search else store.history(args.last)
        if args.json:
            print(json.dumps(rows, ensure_ascii=False, indent=1))
        else:
            console.print(views.history_view(rows, empty="no matching messages" if args.search else "(no messages yet)"))
        return 0

    if args.command == "metrics":
        return show_metrics(args, ctx, console)

    ctx.interactive = args.message is None and sys.stdin.isatty()  # else approvals are refused, not asked
    if args.command == "tools":
        return tools(args, ctx, console)
    if args.command == "memory":
        return memory(args, ctx, console)
    if args.command == "evolve":
        from graph.cli import evolve

        return evolve.main(args, ctx, console)
    if args.command in ("reward", "prompt", "data", "learn"):
        from graph.cli import learning

        return learning.main(args, ctx, console)
    if args.command == "undo":
        from graph.tools import files

        ctx.settings  # noqa: B018 - validate the config
        try:
            console.print(files.undo(ctx, force=args.force), highlight=False, markup=False)
        except files.UndoError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0

    if args.command == "backup":
        from graph.store import store_for

        path = store_for(ctx.home).backup()
        console.print(f"backup written: {path} ({path.stat().st_size / 2**20:.1f} MB)", highlight=False)
        return 0

    from graph.session import Session

    session = Session(ctx)
    if args.command == "monitor":
        return monitor(args, session, console)
    if args.command == "status":
        info = views.status(ctx, session.store, session.backend)
        if args.json:
            print(json.dumps(info, ensure_ascii=False, indent=1))
        else:
            console.print(views.status_table(info))
        return 0
    if args.message is not None:
        meta = repl.show_turn(session, attached(args.message), console)
        repl.show_upkeep(session, console)
        if meta.get("error"):
            return 1
        if not meta.get("interrupted"):
            return 0
        return 130 if meta["interrupted"] == "stopped by the user" else 1  # partial answer: kept, but say so
    repl.run(session, console)
    return 0


def attached(message: str) -> str:
    """The -m message with piped stdin attached below it, fenced (`git diff | agent.py -m "review this"`)."""
    if sys.stdin is None or sys.stdin.isatty():
        return message
    text = sys.stdin.read().strip("\n")
    if not text.strip():
        return message
    fence = "`" * max(3, 1 + max((len(run) for run in text.split("\n") if set(run) == {"`"}), default=0))
    return f"{message}\n\n{fence}\n{text}\n{fence}"


def tools(args: argparse.Namespace, ctx, console) -> int:
    import json

    from rich.table import Table

    from graph import tools as registry
    from graph.cli import repl

    ctx.settings  # noqa: B018 - validate the config
    warn = lambda text: print(f"warning: {text}", file=sys.stderr)  # noqa: E731
    if args.action == "remove":
        from langchain_core.tools import ToolException

        from graph.tools import made

        try:
            console.print(made.remove(ctx, args.name), highlight=False, markup=False)
        except ToolException as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.action == "run":
        try:
            call_args = json.loads(args.args)
        except json.JSONDecodeError as exc:
            print(f"error: the arguments are not valid JSON ({exc.msg} at character {exc.pos})", file=sys.stderr)
            return 2
        if not isinstance(call_args, dict):
            print("error: the arguments must be a JSON object, like '{\"path\": \"README.md\"}'", file=sys.stderr)
            return 2
        ask = (lambda request: repl.ask(request, console)) if ctx.interactive else None
        from graph.builder import builder

        ctx.agent_graph = builder  # what `delegate` runs a sub-agent on
        ok, text = registry.run_one(ctx, args.name, call_args, ask)
        print(text if ok else f"error: {text}", file=sys.stdout if ok else sys.stderr)
        return 0 if ok else 1
    rows = registry.listing(ctx, warn)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return 0
    table = Table("tool", "source", "what it does", box=None, pad_edge=False)
    for row in rows:
        table.add_row(row["name"], row["source"], row["description"])
    console.print(table)
    from graph.tools import mcp

    for server in mcp.servers(ctx):
        detail = f"{server['tools']} tools" if server["status"] == "running" else server.get("error") or ""
        console.print(f"MCP server {server['name']} ({server['kind']}): {server['status']}"
                      + (f" · {detail}" if detail else ""), highlight=False, markup=False)
    return 0


def memory(args: argparse.Namespace, ctx, console) -> int:
    import json

    from graph.cli import views
    from graph.memory import MemoryUnavailable, memories_for

    if not ctx.settings.memory.enabled:
        print("error: long-term memory is turned off (memory.enabled in config.yaml)", file=sys.stderr)
        return 1
    args.json = getattr(args, "json", False)
    try:
        memories = memories_for(ctx)
        if args.action == "consolidate":
            from graph.nodes.reflect import consolidate

            report = consolidate(ctx)
            print(json.dumps(report) if args.json else
                  f"merged {report['merged']} memories into {report['summaries']} summaries; "
                  f"dropped {report['dropped']} faded ones")
            return 0
        if args.action == "add":
            found, what = memories.add(args.text, args.type, args.importance / 5, pinned=args.pin, source="user")
            rows = [found.as_dict()]
            note = {"merged": "already known: strengthened", "superseded": "remembered; it replaces an older one"}
            if not args.json:
                console.print(f"{note.get(what, 'remembered')}: [{found.id}] {found.text}", highlight=False,
                              markup=False)
                return 0
        elif args.action == "forget":
            try:
                rows = [memories.forget(args.id).as_dict()]
            except KeyError as exc:
                print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
                return 1
            if not args.json:
                console.print(f"forgot [{rows[0]['id']}] {rows[0]['text']}", highlight=False, markup=False)
                return 0
        elif args.action == "search":
            found = memories.search(args.text, k=10, touch=False)
            turns = memories.search_turns(args.text, k=3)
            if args.json:
                print(json.dumps({"memories": [m.as_dict() for m in found], "turns": turns}, ensure_ascii=False,
                                 indent=1))
                return 0
            console.print(views.memory_table([_row(memories, m) for m in found], empty="no matching memories"))
            for t in turns:
                console.print(f"turn {t['turn']} ({t['similarity']:.2f}): {' '.join(t['text'].split())[:200]}",
                              highlight=False, markup=False)
            return 0
        else:
            listed = memories.list(status=None if getattr(args, "all", False) else "active",
                                   limit=getattr(args, "last", None))
            rows = [_row(memories, m) for m in listed]
            if not args.json:
                console.print(views.memory_table(rows))
                return 0
    except MemoryUnavailable as exc:
        print(f"error: long-term memory is unavailable: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(rows, ensure_ascii=False, indent=1))
    return 0


def _row(memories, m) -> dict:
    return {**m.as_dict(), "strength": round(memories.effective_importance(m), 3)}


def show_metrics(args: argparse.Namespace, ctx, console) -> int:
    import json

    from graph import turnlog

    ctx.settings  # noqa: B018 - validate the config
    records = turnlog.follow(ctx.home, args.last) if args.follow else turnlog.read(ctx.home, args.last)
    if not args.follow and not records:
        console.print(f"no turns logged yet in {turnlog.path(ctx.home)}", highlight=False)
    try:
        for record in records:
            print(json.dumps(record, ensure_ascii=False) if args.json else turnlog.describe(record), flush=True)
    except KeyboardInterrupt:
        pass
    return 0


def monitor(args: argparse.Namespace, session, console) -> int:
    import json
    import time

    from rich.live import Live

    from graph import monitor as metrics

    def snap(cpu_interval: float | None = None) -> dict:
        return metrics.snapshot(session.ctx, session.store, session.backend, cpu_interval)

    if args.json or args.once:
        current = snap(cpu_interval=0.2)
    if args.json:
        print(json.dumps(current, ensure_ascii=False, indent=1))
        return 0
    if args.once:
        console.print(metrics.dashboard(current))
        return 0
    if session.ctx.settings.monitoring.prometheus_port:
        problem = metrics.serve_prometheus(session.ctx.settings.monitoring.prometheus_port, snap)
        if problem:
            console.print(f"[yellow]! {problem}[/]", highlight=False)
            time.sleep(2)  # readable before the dashboard takes the screen
    history = metrics.History()
    try:
        with Live(console=console, screen=True, auto_refresh=False) as live:
            while True:
                current = snap()
                history.add(current)
                live.update(metrics.dashboard(current, history), refresh=True)
                time.sleep(session.ctx.settings.monitoring.refresh_s)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
