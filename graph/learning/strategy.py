"""A policy learned from reward: Thompson sampling over response strategies.

Owns: the strategy factors (answer style, thinking, temperature), the coarse context bucket
of a message (language × simple/complex), choosing a strategy by sampling each arm's Beta
posterior, updating the chosen arms with each settled reward, and the `bandit` table that
keeps the posteriors. The factors are sampled independently (a factored bandit), so a few
dozen rewards are enough to move them.
Does not own: how a strategy changes the answer (nodes/reason.py) or the reward (reward.py).
"""

from __future__ import annotations

import random
import re

from graph.models import thinking
from graph.store import Store

FACTORS: dict[str, tuple[str, ...]] = {
    "style": ("default", "concise", "detailed"),
    "think": ("auto", "on", "off"),
    "temperature": ("config", "low", "high"),
}
TEMPERATURES = {"low": 0.1, "high": 0.8}
DEFAULT = {factor: arms[0] for factor, arms in FACTORS.items()}
# Beta prior of an arm: the configured behaviour starts a little ahead (as if it had earned one
# good answer), so a new user sees mostly the defaults while the other arms are explored.
PRIOR = {True: (2.0, 1.0), False: (1.0, 1.0)}
# Arms a small model cannot carry out (the embedded 135M model thinks in loops, pads a "detailed"
# answer with "Step 1: ...", and takes the concise style's message after the question for the
# question: "The answer is: The answer is: ..."): with that model they are never explored. Tried
# rarely was not enough: in bench_feedback (bullets and english users, seed 0) one try of thinking
# with the detailed style at turn 3 gave a nonsense answer that SmolLM2 then copied from its window
# for the rest of the run. Feedback that asks for them still gets them (feedback.py's arms).
COSTLY = frozenset({("think", "on"), ("style", "detailed"), ("style", "concise")})


def prior(factor: str, arm: str) -> tuple[float, float, int]:
    return (*PRIOR[DEFAULT.get(factor) == arm], 0)


JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def bucket(text: str) -> str:
    """The coarse context of a message: its language and whether it needs reasoning."""
    lang = "ja" if JAPANESE.search(text) else "en"
    return f"{lang}-{'complex' if thinking.needs_thinking(text) else 'simple'}"


def posteriors(store: Store, where: str | None = None) -> dict[tuple[str, str, str], tuple[float, float, int]]:
    """{(bucket, factor, arm): (alpha, beta, n)} for one bucket (or all)."""
    sql = "SELECT bucket, factor, arm, alpha, beta, n FROM bandit" + (" WHERE bucket=?" if where else "")
    return {(b, f, a): (al, be, n) for b, f, a, al, be, n in store.read(sql, (where,) if where else ())}


def choose(store: Store, where: str, rng: random.Random | None = None, barred: frozenset = frozenset()
           ) -> dict[str, str]:
    """One arm per factor: the one whose sample from its Beta(alpha, beta) posterior is highest
    (`barred` (factor, arm) pairs are never chosen; a factor's default is never barred)."""
    rng = rng or random
    known = posteriors(store, where)
    chosen = {}
    for factor, arms in FACTORS.items():
        draws = {arm: rng.betavariate(*known.get((where, factor, arm), prior(factor, arm))[:2])
                 for arm in arms if (factor, arm) not in barred}
        chosen[factor] = max(draws, key=draws.get)
    return chosen


def update(store: Store, where: str, arms: dict[str, str], reward: float) -> None:
    """A reward in [-1, 1] as a fractional success ((r + 1) / 2) for each chosen arm."""
    success = (max(-1.0, min(1.0, reward)) + 1) / 2
    with store.write() as db:
        for factor, arm in arms.items():
            if arm not in FACTORS.get(factor, ()):
                continue  # an arm from an older version of the factors
            alpha, beta, _ = prior(factor, arm)
            db.execute("INSERT INTO bandit (bucket, factor, arm, alpha, beta, n) VALUES (?,?,?,?,?,1)"
                       " ON CONFLICT(bucket, factor, arm) DO UPDATE SET alpha=alpha+?, beta=beta+?, n=n+1",
                       (where, factor, arm, alpha + success, beta + 1 - success, success, 1 - success))


def table(store: Store) -> list[dict]:
    """Every arm that has been tried: bucket, factor, arm, mean reward estimate, plays."""
    rows = []
    for (where, factor, arm), (alpha, beta, n) in sorted(posteriors(store).items()):
        rows.append({"bucket": where, "factor": factor, "arm": arm, "n": n,
                     "mean": round(2 * alpha / (alpha + beta) - 1, 3)})  # back on the reward scale
    return rows


def best(store: Store, where: str) -> dict[str, str]:
    """The arms with the highest posterior mean (what the policy has learned, without sampling)."""
    known = posteriors(store, where)
    out = {}
    for factor, arms in FACTORS.items():
        means = {arm: (lambda a, b, _n: a / (a + b))(*known.get((where, factor, arm), prior(factor, arm)))
                 for arm in arms}
        out[factor] = max(means, key=means.get)
    return out
