"""Breeding prompt genomes: LLM-driven crossover and mutation, validated, with plain fallbacks.

A genome's prompt is the agent's base prompt (who it is, kept as is) plus learned rules; the
operators work on the rules. Crossover asks the model to combine two parents' rules (EvoPrompt);
mutation asks it to rephrase them, add one, remove one, or change them to fix the cases the
genome scored worst on, with the judge's reasons (GEPA's reflective mutation). A child is
validated like any self-written prompt (selfprompt.problem: non-empty, bounded, first line
kept, rules are sentences). A child that fails is archived as `invalid` with the reason, and a
plain operator makes the child instead (uniform crossover of the rule lists, or dropping a
rule), so a small model's junk never stalls a run. Sampling settings are inherited from one
parent and jittered.
Does not own: scoring (fitness.py), the archive (archive.py), LoRA adapters (lora.py).
"""

from __future__ import annotations

import random

from graph.context import Context
from graph.evolution.archive import Genome
from graph.learning import selfprompt
from graph.models import llm, prompts

SCHEMA = {"type": "object", "required": ["rules", "why"], "properties": {
    "rules": {"type": "array", "maxItems": 6, "items": {"type": "string", "maxLength": 160}},
    "why": {"type": "string", "maxLength": 200}}}
MOST_RULES = 6
REPLY_TOKENS = 400  # room for MOST_RULES rules of SCHEMA's length and the reason
TEMPERATURE = (0.0, 1.2)
MUTATIONS = tuple(prompts.MUTATE)


def crossover(ctx: Context, a: Genome, b: Genome, rng: random.Random) -> tuple[Genome, str]:
    """A child of `a` and `b`, and why the model's own child was not usable ('' when it was)."""
    listing = lambda g: _numbered(selfprompt.split(g.prompt)[1]) or "(no rules)"  # noqa: E731
    reply = _ask(ctx, prompts.CROSSOVER.format(a=listing(a), b=listing(b), most=MOST_RULES))
    child, why = _child(ctx, a, reply, "crossover", [a.id, b.id], rng, sampling_of=rng.choice([a, b]))
    if not why:
        return child, ""
    ra, rb = selfprompt.split(a.prompt)[1], selfprompt.split(b.prompt)[1]
    rules = list(dict.fromkeys(r for r in ra + rb if rng.random() < 0.5))[:MOST_RULES]
    return _plain(ctx, a, rules, "crossover:uniform", [a.id, b.id], rng, rng.choice([a, b])), why


def mutate(ctx: Context, g: Genome, kind: str, wants: str, rng: random.Random) -> tuple[Genome, str]:
    """A mutant of `g` (kind: rephrase, add, remove, reflect), and why the model's own was not usable."""
    failures = "".join(f"\n{prompts.MUTATION_FAILURE.format(**f)}\n" for f in g.feedback) if kind == "reflect" else ""
    rules = selfprompt.split(g.prompt)[1]
    reply = _ask(ctx, prompts.MUTATION.format(task=prompts.MUTATE[kind], preferences=wants,
                                              rules=_numbered(rules) or "(no rules yet)", failures=failures,
                                              most=MOST_RULES))
    child, why = _child(ctx, g, reply, f"mutate:{kind}", [g.id], rng, sampling_of=g)
    if not why:
        return child, ""
    kept = list(rules)
    if kept:
        kept.pop(rng.randrange(len(kept)))
    return _plain(ctx, g, kept, "mutate:drop", [g.id], rng, g), why


def jitter(sampling: dict, rng: random.Random, sigma: float = 0.15) -> dict:
    """Sampling settings with the temperature moved a little (kept within TEMPERATURE)."""
    t = sampling.get("temperature")
    if t is None:
        return dict(sampling)
    low, high = TEMPERATURE
    return {**sampling, "temperature": round(min(high, max(low, t + rng.gauss(0, sigma))), 2)}


def _ask(ctx: Context, text: str) -> dict | None:
    try:
        return llm.structured(ctx, text, SCHEMA, max_tokens=REPLY_TOKENS)
    except llm.BackendError:
        return None


def _child(ctx: Context, parent: Genome, reply: dict | None, operator: str, parents: list[int],
           rng: random.Random, sampling_of: Genome) -> tuple[Genome, str]:
    """The model's child, and '' or why it is unusable."""
    rules = reply.get("rules") if reply else None
    if not isinstance(rules, list):
        return Genome(parent.prompt), "the model gave no usable JSON"
    rules = [" ".join(str(r).split()) for r in rules if str(r).strip()][:MOST_RULES]
    return _plain(ctx, parent, rules, operator, parents, rng, sampling_of), _problem(ctx, parent, rules)


def _plain(ctx: Context, parent: Genome, rules: list[str], operator: str, parents: list[int], rng: random.Random,
           sampling_of: Genome) -> Genome:
    base = selfprompt.split(parent.prompt)[0]
    return Genome(selfprompt.compose(base, list(dict.fromkeys(rules))), sampling_of.lora,
                  jitter(sampling_of.sampling, rng) if rng.random() < 0.5 else dict(sampling_of.sampling),
                  parents, operator)


def _problem(ctx: Context, parent: Genome, rules: list[str]) -> str:
    base = selfprompt.split(parent.prompt)[0]
    text = selfprompt.compose(base, list(dict.fromkeys(rules)))
    return selfprompt.problem(ctx, parent.prompt, text) or ""


def _numbered(rules: list[str]) -> str:
    return "\n".join(f"{i}. {r}" for i, r in enumerate(rules, 1))
