"""`agent.py reward` and the REPL's /good, /bad, /rate and /reward: the rewards of the answers
explained component by component, the reward curve, the learned strategy policy, and rating
an answer by hand.

Owns: the command's parser and handler, the words that explain each reward component, and
the layouts of rewards, the curve and the policy. Does not own: the rewards (reward.py), the
policy (bandit.py) or explicit ratings (nodes/reward.py).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from graph.cli.args import count
from graph.cli.learning import state
from graph.cli.output import Out, Problem, handled, when

if TYPE_CHECKING:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from graph import reward
    from graph.context import Context
    from graph.store import Store

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
BLOCK = 10  # turns per point of the reward curve


def add(sub, common: argparse.ArgumentParser, js: argparse.ArgumentParser) -> None:
    r = sub.add_parser("reward", parents=[common, js], help="rewards of the answers, explained; the learned policy",
                       description="With no option: the last rewards, the reward curve and the learned strategy policy.")
    r.add_argument("--turn", type=count, metavar="N", help="explain turn N's reward component by component")
    r.add_argument("--last", type=count, default=20, metavar="N", help="how many rewards to list (default 20)")
    rate = r.add_mutually_exclusive_group()
    rate.add_argument("--good", action="store_true", help="rate the latest answer (or --turn N) as good")
    rate.add_argument("--bad", action="store_true", help="rate the latest answer (or --turn N) as bad")
    rate.add_argument("--rate", type=int, choices=range(1, 6), metavar="1-5", help="rate it from 1 to 5")
    r.set_defaults(run=run)


def _components(components: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:+.2f}" for k, v in components.items()) or "—"


def _strategy(item: reward.Reward, full: bool = True) -> str:
    """The context bucket and the arms that answered (short: only those not the default)."""
    from graph import bandit

    if not item.arms:
        return "—"
    shown = {k: v for k, v in item.arms.items() if full or bandit.DEFAULT.get(k) != v}
    arms = ", ".join(f"{k} {v}" for k, v in shown.items()) or "defaults"
    return f"{item.bucket}: {arms}" if item.bucket else arms


def curve(store: Store, points: int = 30) -> list[dict]:
    """The mean settled reward per BLOCK turns (the latest `points` blocks), oldest first."""
    rows = store.read("SELECT (turn - 1) / ? AS block, AVG(reward), COUNT(*) FROM rewards WHERE settled IS NOT NULL"
                      " GROUP BY block ORDER BY block DESC LIMIT ?", (BLOCK, points))
    return [{"first": b * BLOCK + 1, "last": (b + 1) * BLOCK, "mean": round(m, 3), "n": n}
            for b, m, n in reversed(rows)]


def policy(store: Store) -> dict:
    """What the strategy policy has learned: every tried arm, and the best arms per bucket."""
    from graph import bandit

    arms = bandit.table(store)
    return {"arms": arms, "best": {where: bandit.best(store, where) for where in sorted({a["bucket"] for a in arms})}}


def report(store: Store, last: int) -> dict:
    from graph import reward

    return {"rewards": reward.recent(store, last, settled_only=False), "curve": curve(store), "policy": policy(store)}


def rewards_table(items: list[reward.Reward]) -> Table | Text:
    from rich.table import Table
    from rich.text import Text

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
    from rich.text import Text

    from graph.monitor import sparkline

    if not points:
        return Text("reward curve: no settled rewards yet", style="dim")
    line = sparkline([p["mean"] for p in points], width=len(points), low=-1.0, high=1.0)
    return Text.assemble((f"mean reward per {BLOCK} turns ", "bold"),
                         f"(turns {points[0]['first']}–{points[-1]['last']}, -1…+1): ", (line, "cyan"),
                         f"  {points[0]['mean']:+.2f} → {points[-1]['mean']:+.2f}")


def policy_view(learned: dict) -> Table | Text:
    from rich.table import Table
    from rich.text import Text

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
    from rich.console import Group

    parts = [rewards_table(data["rewards"]), curve_line(data["curve"])]
    if not short:
        parts.append(policy_view(data["policy"]))
    return Group(*parts)


def explained(store: Store, turn: int) -> reward.Reward:
    from graph import reward

    item = reward.get(store, turn)
    if item is None:
        raise Problem(f"turn {turn} has no reward (only answered turns get one; `agent.py reward` lists them)")
    return item


def explain_view(item: reward.Reward) -> Group:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from graph import reward

    state_ = f"settled {when(item.settled)}" if item.settled is not None else "waiting for your next message"
    parts = [Text.assemble((f"turn {item.turn}", "bold"), " · reward ",
                           (f"{item.reward:+.2f}", "green" if item.reward > 0 else "red" if item.reward < 0 else ""),
                           f" · {state_}")]
    if item.components:
        table = Table("component", "value", "meaning", box=None, pad_edge=False)
        for key, value in item.components.items():
            table.add_row(key, f"{value:+.2f}", MEANINGS.get(key, ""))
        parts.append(table)
        explicit = [k for k in item.components if k in (*reward.EXPLICIT, "rating")]
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
    from rich.text import Text

    from graph.store import store_for

    text = Text.assemble(f"turn {item.turn}'s answer: reward ", (f"{item.reward:+.2f}", "bold"),
                         f" ({_components(item.components)})")
    now = state(ctx, store_for(ctx.home))
    if now != "on":
        text.append(f"; learning is {now}: recorded, nothing learned from it", style="dim")
    return text


def run(args: argparse.Namespace, ctx: Context, console) -> int:
    return handled(command, args, ctx, console)


def command(args, ctx: Context, out: Out, store: Store) -> None:
    if args.good or args.bad or args.rate is not None:
        item = rate(ctx, "good" if args.good else "bad" if args.bad else "rating", args.rate, args.turn)
        out(item.as_dict(), rated_text(ctx, item))
    elif args.turn is not None:
        item = explained(store, args.turn)
        out({**item.as_dict(), "meanings": {k: MEANINGS.get(k, "") for k in item.components}}, explain_view(item))
    else:
        data = report(store, args.last)
        out({**data, "rewards": [r.as_dict() for r in data["rewards"]]}, rewards_view(data))
