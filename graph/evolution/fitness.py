"""Fitness of a genome: how well its answers fit what this user wants, case by case.

The cases are the held-out split of the tuning data (a question with an answer the user liked
and/or disliked) and then a fixed probe set (prompts.PROBES), `evolution.eval_cases` in all.
A genome answers each case with its own prompt and sampling, and a judge (the active model,
JSON-constrained) scores the answer 0..1 against the user's revealed preferences: the learned
rules of the prompt in use, and the liked/disliked answer of the case when there is one.
Selection keeps the Pareto front over the cases (a genome best on some case survives even
with a lower mean, as in GEPA), then the best means (elitism).
Does not own: the archive (archive.py) or how children are made (operators.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from langchain_core.messages import HumanMessage, SystemMessage

from graph.context import Context
from graph.evolution.archive import Genome
from graph.learning import selfprompt, tuning
from graph.models import llm, prompts, sentences
from graph.store import Store

JUDGE_SCHEMA = {"type": "object", "required": ["score", "why"], "properties": {
    "score": {"type": "integer", "minimum": 0, "maximum": 10}, "why": {"type": "string", "maxLength": 200}}}
SHOWN = 300  # characters of a reference answer the judge sees
JUDGE_TOKENS = 120  # room for the score and a short reason


@dataclass
class Case:
    id: str
    question: str
    liked: str = ""
    disliked: str = ""


@dataclass
class Judged:
    score: float  # 0..1
    answer: str
    why: str


def cases(ctx: Context, store: Store) -> list[Case]:
    """Held-out examples first (one case per question, with what the user liked and disliked),
    then probe questions, `evolution.eval_cases` in all."""
    wanted = ctx.settings.evolution.eval_cases
    found: dict[str, Case] = {}
    for example in tuning.listing(store, split="eval"):
        question = example.question.strip()
        if not question:
            continue
        case = found.setdefault(question, Case(f"example:{example.id}", question))
        if example.label == "desirable" and not case.liked:
            case.liked = example.answer
        elif example.label == "undesirable" and not case.disliked:
            case.disliked = example.answer
    chosen = list(found.values())[:wanted]
    chosen += [Case(f"probe:{i}", q) for i, q in enumerate(prompts.PROBES)][: wanted - len(chosen)]
    return chosen


def preferences(ctx: Context) -> str:
    """What the user wants, as the judge and the mutation operator read it."""
    rules = selfprompt.split(selfprompt.current(ctx).text)[1]
    if not rules:
        return "- Nothing specific learned yet: a correct, clear and helpful answer."
    return "\n".join(f"- {r}" for r in rules)


def answer(ctx: Context, genome: Genome, case: Case) -> str:
    """The genome's answer to one case: its prompt, sampling and LoRA adapter (the model serving,
    with that adapter), no tools, no thinking."""
    system = prompts.SYSTEM.format(system_prompt=genome.prompt, today=date.today().isoformat())
    asked = [SystemMessage(system), HumanMessage(case.question)]
    limit, temperature = ctx.settings.evolution.answer_tokens, genome.sampling.get("temperature")
    if genome.lora:
        reply = llm.tuned(llm.adapted(ctx, genome.lora).chat, temperature, limit).invoke(asked)
        return sentences.ended(reply.text, reply.response_metadata).strip()  # as llm.respond ends the others
    reply, _ = llm.respond(ctx, asked, [], notify=lambda text: None, temperature=temperature, max_tokens=limit)
    return reply.text.strip()


def judge(ctx: Context, wants: str, case: Case, text: str) -> Judged:
    reference = (prompts.JUDGE_LIKED.format(text=case.liked[:SHOWN]) if case.liked else "") + \
        (prompts.JUDGE_DISLIKED.format(text=case.disliked[:SHOWN]) if case.disliked else "")
    reply = llm.structured(ctx, prompts.JUDGE.format(preferences=wants, reference=reference, question=case.question,
                                                     answer=text[:1500] or "(no answer)"), JUDGE_SCHEMA,
                           max_tokens=JUDGE_TOKENS) or {}
    score = reply.get("score")
    if not isinstance(score, (int, float)):
        return Judged(0.0, text, "the judge gave no usable score")
    return Judged(max(0.0, min(10.0, float(score))) / 10, text, " ".join(str(reply.get("why", "")).split())[:200])


def evaluate(ctx: Context, genome: Genome, chosen: list[Case], wants: str,
             each: Callable[[Case, Judged], None] = lambda case, judged: None) -> dict[str, Judged]:
    """Answer and judge every case; `each` hears about each one as it is done."""
    found = {}
    for case in chosen:
        judged = judge(ctx, wants, case, answer(ctx, genome, case))
        found[case.id] = judged
        each(case, judged)
    return found


def dominates(a: dict[str, float], b: dict[str, float]) -> bool:
    return all(a[k] >= b[k] for k in b) and any(a[k] > b[k] for k in b)


def front(genomes: list[Genome]) -> list[Genome]:
    """The genomes no other genome beats on every case (the Pareto front)."""
    return [g for g in genomes if not any(dominates(o.scores, g.scores) for o in genomes if o is not g)]


def select(genomes: list[Genome], keep: int) -> list[Genome]:
    """Survivors: the best genome always (elitism), then the Pareto front by fitness, then the
    rest by fitness, `keep` in all."""
    ranked = sorted((g for g in genomes if g.scores), key=lambda g: -g.fitness)
    best = front(ranked)
    return (best + [g for g in ranked if g not in best])[:keep]


def wins(genomes: list[Genome]) -> dict[int, int]:
    """How many cases each genome is best on (ties count for all): GEPA's parent weights."""
    counts = {g.id: 0 for g in genomes}
    for case in genomes[0].scores if genomes else {}:
        top = max(g.scores[case] for g in genomes)
        for g in genomes:
            counts[g.id] += g.scores[case] == top
    return counts
