"""The self-learning commands: `agent.py reward`, `prompt`, `data` and `learn`, and the
REPL's /good, /bad, /rate, /reward, /prompt, /learn and /data, with the layouts they share.

Owns: running each action on already-parsed arguments (what the user can fix is one
`error:` line and exit 1), logging the user's own changes in the learning log, the words
that explain each reward component, and the rich layouts of rewards, the reward curve,
the learned policy, prompt versions and diffs, tuning examples and the learning state.
The CLI and the slash commands print the same layouts; `--json` prints the same facts.
Does not own: parsing (agent.py parses arguments, commands.py slash lines) or any of the
data: rewards (reward.py), the policy (bandit.py), prompt versions (selfprompt.py), tuning
examples (tuning.py), the freeze switch and the log (learning.py), explicit ratings
(nodes/reward.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from graph import bandit, feedback, learning, reward, selfprompt, tuning
from graph.context import Context
from graph.store import Store, store_for
from graph.cli.views import printable

# What each reward component means, in one line (the weights are reward.py's).
MEANINGS = {
    "praise": "your next message thanked or praised the answer",
    "correction": "your next message said the answer was wrong",
    "complaint": "your next message complained about its form (too long, too vague, confusing...)",
    "reasked": "you asked nearly the same thing again (the answer did not help)",
    "followed_up": "you went on with the same topic (the answer was used)",
    "silence": "a long silence before your next message (learning.silence_minutes)",
    "stopped": "you stopped the answer while it was written (Ctrl-C)",
    "tool_errors": "tool calls failed while answering (-0.2 each, at most 3)",
    "good": "you marked it good (/good, or 'good example' in words)",
    "bad": "you marked it bad (/bad, or 'bad example' in words)",
    "rating": "your /rate 1-5 (1 = -1, 3 = 0, 5 = +1)",
    "thumbs_up": "a thumbs-up (or similar) emoji in your next message",
    "thumbs_down": "a thumbs-down (or angry) emoji in your next message",
}
EXPLICIT = (*reward.EXPLICIT, "rating")
BLOCK = 10  # turns per point of the reward curve


class Problem(Exception):
    """Something the user can fix; the message says what."""


# ---------------------------------------------------------------- shared helpers


def state(ctx: Context, store: Store) -> str:
    """on, frozen (by the user) or off (learning.enabled in config.yaml)."""
    if not ctx.settings.learning.enabled:
        return "off"
    return "frozen" if learning.frozen(store) else "on"


def summary(ctx: Context, store: Store) -> dict:
    """The learning at a glance: state, prompt version serving, mean of the last 20 settled
    rewards, tuning examples. Reads only (no prompt version is created)."""
    from graph import monitor

    values = monitor.recent_rewards(store)
    mean = reward.mean(values)
    return {"state": state(ctx, store), "prompt_version": monitor.prompt_version(store),
            "reward_avg": None if mean is None else round(mean, 3), "rewards": len(values),
            "examples": sum(tuning.counts(store).values()), "preferences": preferences(store),
            "extra_calls": extra_calls(ctx, store)}


def preferences(store: Store) -> list[dict]:
    """The standing preferences from the user's feedback, oldest first."""
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


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "—"


def _components(components: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:+.2f}" for k, v in components.items()) or "—"


def _strategy(item: reward.Reward, full: bool = True) -> str:
    """The context bucket and the arms that answered (short: only those not the default)."""
    if not item.arms:
        return "—"
    shown = {k: v for k, v in item.arms.items() if full or bandit.DEFAULT.get(k) != v}
    arms = ", ".join(f"{k} {v}" for k, v in shown.items()) or "defaults"
    return f"{item.bucket}: {arms}" if item.bucket else arms


def _one_line(text: str, width: int) -> str:
    text = " ".join(printable(text).split())
    return text if len(text) <= width else text[:width - 1] + "…"


# ---------------------------------------------------------------- rewards


def curve(store: Store, points: int = 30) -> list[dict]:
    """The mean settled reward per BLOCK turns (the latest `points` blocks), oldest first."""
    rows = store.read("SELECT (turn - 1) / ? AS block, AVG(reward), COUNT(*) FROM rewards WHERE settled IS NOT NULL"
                      " GROUP BY block ORDER BY block DESC LIMIT ?", (BLOCK, points))
    return [{"first": b * BLOCK + 1, "last": (b + 1) * BLOCK, "mean": round(m, 3), "n": n}
            for b, m, n in reversed(rows)]


def policy(store: Store) -> dict:
    """What the strategy policy has learned: every tried arm, and the best arms per bucket."""
    arms = bandit.table(store)
    return {"arms": arms, "best": {where: bandit.best(store, where) for where in sorted({a["bucket"] for a in arms})}}


def report(store: Store, last: int) -> dict:
    return {"rewards": reward.recent(store, last, settled_only=False), "curve": curve(store), "policy": policy(store)}


def rewards_table(items: list[reward.Reward]) -> Table | Text:
    if not items:
        return Text("no rewards yet: each answer gets one when your next action is known", style="dim")
    table = Table("turn", "reward", "components", "prompt", "strategy", "state", box=None, pad_edge=False)
    for item in items:
        value = Text(f"{item.reward:+.2f}", style="green" if item.reward > 0 else "red" if item.reward < 0 else "")
        settled = "settled" if item.settled is not None else "waiting"
        table.add_row(str(item.turn), value, _components(item.components),
                      "—" if item.prompt_version is None else f"v{item.prompt_version}", _strategy(item, full=False),
                      Text(settled + (" · outside content" if item.tainted else ""),
                           style="" if item.settled is not None else "dim"))
    return table


def curve_line(points: list[dict]) -> Text:
    from graph.monitor import sparkline

    if not points:
        return Text("reward curve: no settled rewards yet", style="dim")
    line = sparkline([p["mean"] for p in points], width=len(points), low=-1.0, high=1.0)
    return Text.assemble((f"mean reward per {BLOCK} turns ", "bold"),
                         f"(turns {points[0]['first']}–{points[-1]['last']}, -1…+1): ", (line, "cyan"),
                         f"  {points[0]['mean']:+.2f} → {points[-1]['mean']:+.2f}")


def policy_view(learned: dict) -> Table | Text:
    if not learned["arms"]:
        return Text("learned policy: nothing yet (it learns from settled rewards; learning.policy)", style="dim")
    table = Table("bucket", "factor", "arm", "mean reward", "plays", "", box=None, pad_edge=False,
                  title="learned policy (Thompson sampling; ★ = best now)", title_justify="left", title_style="bold")
    for row in learned["arms"]:
        best = learned["best"].get(row["bucket"], {}).get(row["factor"]) == row["arm"]
        table.add_row(row["bucket"], row["factor"], row["arm"], f"{row['mean']:+.2f}", str(row["n"]),
                      "★" if best else "")
    return table


def rewards_view(data: dict, short: bool = False) -> Group:
    parts = [rewards_table(data["rewards"]), curve_line(data["curve"])]
    if not short:
        parts.append(policy_view(data["policy"]))
    return Group(*parts)


def explained(store: Store, turn: int) -> reward.Reward:
    item = reward.get(store, turn)
    if item is None:
        raise Problem(f"turn {turn} has no reward (only answered turns get one; `agent.py reward` lists them)")
    return item


def explain_view(item: reward.Reward) -> Group:
    state_ = f"settled {_when(item.settled)}" if item.settled is not None else "waiting for your next message"
    parts = [Text.assemble((f"turn {item.turn}", "bold"), " · reward ",
                           (f"{item.reward:+.2f}", "green" if item.reward > 0 else "red" if item.reward < 0 else ""),
                           f" · {state_}")]
    if item.components:
        table = Table("component", "value", "meaning", box=None, pad_edge=False)
        for key, value in item.components.items():
            table.add_row(key, f"{value:+.2f}", MEANINGS.get(key, ""))
        parts.append(table)
        explicit = [k for k in item.components if k in EXPLICIT]
        parts.append(Text(f"an explicit rating ({explicit[-1]}) decides alone; the other components are kept but not "
                          "counted" if explicit else "the reward is the sum of the components, clipped to -1…+1",
                          style="dim"))
    else:
        parts.append(Text("no signal (yet): the reward is 0", style="dim"))
    parts.append(Text(f"answered by prompt version {item.prompt_version or '—'} with strategy {_strategy(item)}"))
    if item.tainted:
        parts.append(Text("content from outside (web, files, tool servers) was in this turn: it never becomes tuning "
                          "data", style="yellow"))
    return Group(*parts)


def rate(ctx: Context, kind: str, stars: int | None = None, turn: int | None = None) -> reward.Reward:
    """Explicit feedback (good, bad, rating) on an answer, the latest by default."""
    from graph.nodes.reward import rate as give

    try:
        return give(ctx, kind, stars, turn)
    except ValueError as exc:
        raise Problem(str(exc)) from None


def rated_text(ctx: Context, item: reward.Reward) -> Text:
    text = Text.assemble(f"turn {item.turn}'s answer: reward ", (f"{item.reward:+.2f}", "bold"),
                         f" ({_components(item.components)})")
    now = state(ctx, store_for(ctx.home))
    if now != "on":
        text.append(f"; learning is {now}: recorded, nothing learned from it", style="dim")
    return text


# ---------------------------------------------------------------- prompt versions


def version_of(ctx: Context, number: int | None = None) -> selfprompt.Version:
    store = store_for(ctx.home)
    serving = selfprompt.current(ctx)
    if number is None:
        return serving
    found = selfprompt.get(store, number)
    if found is None:
        raise Problem(f"no prompt version {number} (`agent.py prompt history` lists them)")
    return found


def version_dict(store: Store, version: selfprompt.Version, serving: int) -> dict:
    return {**version.as_dict(), "serving": version.id == serving, "stats": selfprompt.stats(store, version.id)}


def _stats_text(stats: dict, short: bool = False) -> str:
    if stats["mean"] is None:
        return "—" if short else "no rewards yet"
    return f"{stats['mean']:+.2f} ({stats['turns']})" if short else \
        f"mean reward {stats['mean']:+.2f} over {stats['turns']} turns"


def version_view(store: Store, version: selfprompt.Version, serving: int) -> Group:
    head = Text.assemble((f"prompt version {version.id}", "bold"), f" · {version.status}",
                         " (serving now)" if version.id == serving else "", f" · by {version.author}",
                         f" · {_when(version.created)} · {_stats_text(selfprompt.stats(store, version.id))}")
    parts = [head]
    if version.rationale:
        parts.append(Text("why: " + printable(version.rationale), style="dim"))
    if version.outcome:
        parts.append(Text("outcome: " + printable(version.outcome), style="dim"))
    parts.append(Text(printable(version.text)))
    return Group(*parts)


def history_table(store: Store, versions: list[selfprompt.Version], serving: int) -> Table:
    table = Table("id", "status", "author", "created", "reward (turns)", "why / outcome", box=None, pad_edge=False)
    style = {"active": "green", "probation": "yellow", "rolled_back": "red", "retired": "dim"}
    for v in versions:
        note = printable(v.rationale) + (f" → {printable(v.outcome)}" if v.outcome else "")
        table.add_row(("▶ " if v.id == serving else "  ") + str(v.id), Text(v.status, style=style.get(v.status, "")),
                      v.author, _when(v.created), _stats_text(selfprompt.stats(store, v.id), short=True), note)
    return table


def diff_pair(ctx: Context, a: int | None = None, b: int | None = None
              ) -> tuple[selfprompt.Version, selfprompt.Version] | None:
    """(from, to): the serving version against its parent by default, A against the serving
    one, or A against B. None when the serving version is the first."""
    serving = version_of(ctx)
    if a is None:
        return (version_of(ctx, serving.parent), serving) if serving.parent else None
    return version_of(ctx, a), version_of(ctx, b) if b is not None else serving


def diff_view(pair: tuple[selfprompt.Version, selfprompt.Version] | None) -> Text:
    if pair is None:
        return Text("this is the first prompt version: nothing to compare it with", style="dim")
    text = selfprompt.diff(*pair)
    if not text:
        return Text(f"versions {pair[0].id} and {pair[1].id} have the same text", style="dim")
    out = Text()
    for line in map(printable, text.splitlines()):
        style = "bold" if line.startswith(("---", "+++")) else "green" if line.startswith("+") else \
            "red" if line.startswith("-") else "cyan" if line.startswith("@@") else ""
        out.append(line + "\n", style=style)
    out.rstrip()
    return out


def set_prompt(ctx: Context, number: int | None = None, text: str | None = None, why: str = "") -> selfprompt.Version:
    """The user's own prompt: an earlier version's text again, or a new text; active at once."""
    try:
        if number is not None:
            version = selfprompt.set_version(ctx, number, why or f"the user went back to version {number}")
        else:
            version = selfprompt.propose(ctx, text or "", "user", why or "set by the user", probation=False)
    except ValueError as exc:
        raise Problem(f"prompt not changed: {exc}") from None
    learning.log(store_for(ctx.home), "prompt", f"version {version.id} set by the user: {version.rationale}")
    return version


def rollback(ctx: Context, why: str) -> str:
    try:
        undone, back = selfprompt.rollback(ctx, why)
    except ValueError as exc:
        raise Problem(str(exc)) from None
    learning.log(store_for(ctx.home), "rollback", f"version {undone.id} rolled back to {back.id} by the user: {why}")
    return f"rolled back prompt version {undone.id}; version {back.id} is serving again"


# ---------------------------------------------------------------- tuning examples


def examples_table(items: list[tuning.Example], width: int = 60) -> Table | Text:
    if not items:
        return Text("no tuning examples (they come from clearly good or bad answers, the agent, and `agent.py data add`)",
                    style="dim")
    table = Table("id", "label", "split", "source", "reward", "turn", "question → answer", box=None, pad_edge=False)
    for e in items:
        table.add_row(str(e.id), Text(e.label, style="green" if e.label == "desirable" else "red"), e.split, e.source,
                      "—" if e.reward is None else f"{e.reward:+.2f}", "—" if e.turn is None else str(e.turn),
                      f"{_one_line(e.question, width // 2)} → {_one_line(e.answer, width)}")
    return table


def counts_text(counts: dict[str, int]) -> Text:
    if not counts:
        return Text("0 tuning examples", style="dim")
    parts = []
    for label in tuning.LABELS:
        here = {k.split("/")[1]: n for k, n in counts.items() if k.startswith(label + "/")}
        if here:
            parts.append(f"{label}: " + ", ".join(f"{n} {split}" for split, n in sorted(here.items(), reverse=True)))
    return Text(f"{sum(counts.values())} tuning examples · " + " · ".join(parts), style="dim")


def examples_view(store: Store, items: list[tuning.Example]) -> Group:
    return Group(examples_table(items), counts_text(tuning.counts(store)))


def example_of(store: Store, example_id: int) -> tuning.Example:
    found = tuning.get(store, example_id)
    if found is None:
        raise Problem(f"no example {example_id} (`agent.py data list` lists them)")
    return found


def example_view(e: tuning.Example) -> Group:
    parts = [Text.assemble((f"example #{e.id}", "bold"), " · ",
                           (e.label, "green" if e.label == "desirable" else "red"),
                           f" · {e.split} · source {e.source} · reward "
                           + ("—" if e.reward is None else f"{e.reward:+.2f}")
                           + (f" · turn {e.turn}" if e.turn is not None else "") + f" · {_when(e.created)}")]
    if e.why:
        parts.append(Text("why: " + printable(e.why), style="dim"))
    for m in e.messages:
        parts.append(Text.assemble((f"{m['role']}: ", "bold cyan" if m["role"] == "user" else "bold green"
                                    if m["role"] == "assistant" else "bold dim"), printable(m["content"])))
    return Group(*parts)


def add_example(ctx: Context, label: str, turn: int | None = None, user: str = "", answer: str = "",
                why: str = "") -> tuning.Example:
    """An example made by the user: from a turn of the transcript (with the system prompt that
    answered it), or from a question and an answer written by hand."""
    store = store_for(ctx.home)
    row = reward.get(store, turn) if turn is not None else None
    try:
        if turn is not None:
            version = selfprompt.get(store, row.prompt_version) if row and row.prompt_version else None
            messages = tuning.from_turn(store, turn, version.text if version else "")
        else:
            messages = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        example = tuning.add(store, messages, label, "user", why or "added by the user",
                             value=row.reward if row else None, turn=turn,
                             eval_share=ctx.settings.learning.eval_share)
    except ValueError as exc:
        raise Problem(str(exc)) from None
    learning.log(store, "example", f"#{example.id} {label} added by the user"
                 + (f" from turn {turn}" if turn is not None else "") + f": {example.why}", turn)
    return example


# ---------------------------------------------------------------- the learning switch


def switch(ctx: Context, off: bool) -> str:
    line = learning.freeze(ctx, off)
    if not off and not ctx.settings.learning.enabled:
        line += " (but learning.enabled is false in config.yaml, which keeps it off)"
    return line


def undo_preference(ctx: Context) -> str:
    """End the newest standing preference (`learn undo`, /learn undo)."""
    try:
        return feedback.undo(ctx)
    except ValueError as exc:
        raise Problem(str(exc)) from None


def preferences_text(items: list[dict]) -> Text:
    if not items:
        return Text("standing preferences: none (repeated feedback such as 'too long' or 「表にして」 makes one)",
                    style="dim")
    text = Text.assemble(("standing preferences", "bold"), " (undo the newest: /learn undo or `agent.py learn undo`):")
    for p in items:
        text.append(f"\n  {p['says']} since turn {p['turn']} ({p['how']})" + (f"; rule: {p['rule']}" if p["rule"] else ""))
    return text


def learn_view(ctx: Context, store: Store, last: int = 10) -> Group:
    info = summary(ctx, store)
    parts = [Text.assemble(("learning: ", "bold"), summary_line(info)), preferences_text(info["preferences"])]
    entries = learning.entries(store, last)
    if entries:
        table = Table("when", "what", "detail", box=None, pad_edge=False, title=f"learning log (last {len(entries)})",
                      title_justify="left", title_style="bold")
        for e in entries:
            table.add_row(_when(e["created"]), e["kind"], printable(e["detail"]))
        parts.append(table)
    else:
        parts.append(Text("learning log: empty", style="dim"))
    return Group(*parts)


# ---------------------------------------------------------------- agent.py subcommands


def main(args: argparse.Namespace, ctx: Context, console: Console) -> int:
    """Run `reward`, `prompt`, `data` or `learn`; 1 with one `error:` line for a user error."""
    ctx.settings  # noqa: B018 - a bad config is reported first
    handler = {"reward": reward_command, "prompt": prompt_command, "data": data_command,
               "learn": learn_command}[args.command]
    try:
        handler(args, ctx, Out(console, getattr(args, "json", False)), store_for(ctx.home))
    except Problem as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


class Out:
    """Prints either the facts as JSON (--json) or their layout for people."""

    def __init__(self, console: Console, as_json: bool):
        self.console, self.json = console, as_json

    def __call__(self, data, view) -> None:
        if self.json:
            print(json.dumps(data, ensure_ascii=False, indent=1))
        else:
            self.console.print(view, highlight=False, markup=False)


def reward_command(args, ctx: Context, out: Out, store: Store) -> None:
    if args.good or args.bad or args.rate is not None:
        item = rate(ctx, "good" if args.good else "bad" if args.bad else "rating", args.rate, args.turn)
        out(item.as_dict(), rated_text(ctx, item))
    elif args.turn is not None:
        item = explained(store, args.turn)
        out({**item.as_dict(), "meanings": {k: MEANINGS.get(k, "") for k in item.components}}, explain_view(item))
    else:
        data = report(store, args.last)
        out({**data, "rewards": [r.as_dict() for r in data["rewards"]]}, rewards_view(data))


def prompt_command(args, ctx: Context, out: Out, store: Store) -> None:
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
        version = set_prompt(ctx, args.version, text, args.why or "")
        out(version_dict(store, version, version.id), f"prompt version {version.id} is active now (after version"
            f" {version.parent}); `agent.py prompt diff` shows the change")
        return
    if action == "rollback":
        line = rollback(ctx, args.why or "rolled back by the user")
        version = version_of(ctx)
        out(version_dict(store, version, version.id), line)
        return
    serving = version_of(ctx).id
    if action == "show":
        version = version_of(ctx, getattr(args, "version", None))
        out(version_dict(store, version, serving), version_view(store, version, serving))
    elif action == "history":
        versions = selfprompt.history(store)
        out([version_dict(store, v, serving) for v in versions], history_table(store, versions, serving))
    else:
        pair = diff_pair(ctx, args.a, args.b)
        out({"from": pair[0].id if pair else None, "to": pair[1].id if pair else serving,
             "diff": selfprompt.diff(*pair) if pair else ""}, diff_view(pair))


def data_command(args, ctx: Context, out: Out, store: Store) -> None:
    action = args.action or "list"
    if action == "export":
        export(store, args.format, args.split, args.out)
    elif action == "list":
        items = tuning.listing(store, getattr(args, "label", None), getattr(args, "split", None),
                               getattr(args, "source", None), getattr(args, "last", None))
        out([e.as_dict() for e in items], examples_view(store, items))
    elif action == "show":
        found = example_of(store, args.id)
        out(found.as_dict(), example_view(found))
    elif action == "add":
        found = add_example(ctx, args.label, args.turn, args.user or "", args.answer or "", args.why or "")
        out(found.as_dict(), f"added example #{found.id} ({found.label}, {found.split} split)")
    else:
        try:
            found = tuning.remove(store, args.id)
        except ValueError as exc:
            raise Problem(str(exc)) from None
        learning.log(store, "example", f"#{found.id} deleted by the user", found.turn)
        out(found.as_dict(), f"removed example #{found.id} ({found.label}: {_one_line(found.question, 60)})")


def export(store: Store, fmt: str, split: str | None, path: str | None) -> None:
    """JSON lines in a TRL trainer's format, to stdout or a file (UTF-8 either way)."""
    records = tuning.export(store, fmt, split)
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


def learn_command(args, ctx: Context, out: Out, store: Store) -> None:
    if args.switch == "undo":
        line = undo_preference(ctx)
        out({**summary(ctx, store), "undone": line}, Text(line))
    elif args.switch:
        line = switch(ctx, args.switch == "off")
        out(summary(ctx, store), line)
    else:
        out({**summary(ctx, store), "log": learning.entries(store, args.last)}, learn_view(ctx, store, args.last))
