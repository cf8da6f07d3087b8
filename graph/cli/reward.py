"""`agent.py reward` and the REPL's /good, /bad, /rate and /reward: the rewards of the answers
explained component by component, the reward curve, the learned strategy policy, and rating
an answer by hand.

Owns: the command's parser and handler, and the layouts of rewards, the curve and the
policy. Does not own: the actions and the words that explain each reward component
(actions/rewards.py), the rewards (reward.py) or the strategy bandit (strategy.py).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from graph.actions import rewards as act
from graph.actions.learning import state
from graph.cli.args import count
from graph.cli.output import Out, handled, when

if TYPE_CHECKING:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from graph.context import Context
    from graph.learning import reward
    from graph.store import Store

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
    from graph.learning import strategy

    if not item.arms:
        return "—"
    shown = {k: v for k, v in item.arms.items() if full or strategy.DEFAULT.get(k) != v}
    arms = ", ".join(f"{k} {v}" for k, v in shown.items()) or "defaults"
    return f"{item.bucket}: {arms}" if item.bucket else arms


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
    return Text.assemble((f"mean reward per {act.BLOCK} turns ", "bold"),
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


def explain_view(item: reward.Reward) -> Group:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from graph.learning import reward

    state_ = f"settled {when(item.settled)}" if item.settled is not None else "waiting for your next message"
    parts = [Text.assemble((f"turn {item.turn}", "bold"), " · reward ",
                           (f"{item.reward:+.2f}", "green" if item.reward > 0 else "red" if item.reward < 0 else ""),
                           f" · {state_}")]
    if item.components:
        table = Table("component", "value", "meaning", box=None, pad_edge=False)
        for key, value in item.components.items():
            table.add_row(key, f"{value:+.2f}", act.MEANINGS.get(key, ""))
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


def rated_text(ctx: Context, item: reward.Reward) -> Text:
    from rich.text import Text

    text = Text.assemble(f"turn {item.turn}'s answer: reward ", (f"{item.reward:+.2f}", "bold"),
                         f" ({_components(item.components)})")
    now = state(ctx, ctx.store)
    if now != "on":
        text.append(f"; learning is {now}: recorded, nothing learned from it", style="dim")
    return text


def run(args: argparse.Namespace, ctx: Context, console) -> int:
    return handled(command, args, ctx, console)


def command(args, ctx: Context, out: Out, store: Store) -> None:
    if args.good or args.bad or args.rate is not None:
        item = act.rate(ctx, "good" if args.good else "bad" if args.bad else "rating", args.rate, args.turn)
        out(item.as_dict(), rated_text(ctx, item))
    elif args.turn is not None:
        item = act.explain(store, args.turn)
        out({**item.as_dict(), "meanings": {k: act.MEANINGS.get(k, "") for k in item.components}}, explain_view(item))
    else:
        data = act.report(store, args.last)
        out({**data, "rewards": [r.as_dict() for r in data["rewards"]]}, rewards_view(data))
