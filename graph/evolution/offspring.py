"""A generation's new members: a mutant or a crossover's child, archived, and copies dropped.

Owns: making a mutant of a parent (reflective on its worst cases half the time when it has
been scored), archiving a child (and the model's own unusable try, as `invalid`), and telling
whether a child is new to its generation (the same prompt, adapter and sampling as a member
is archived as `invalid` and not scored twice). Used by the seed and breed nodes.
Does not own: the operators themselves (operators.py) or the archive (archive.py).
"""

from __future__ import annotations

import json

from graph.evolution import archive, operators
from graph.evolution.archive import Genome


def mutant(ctx, store, parent: Genome, rng, wants, run, generation) -> Genome:
    """A mutant of `parent`: half the time reflective (on its worst cases) when it has been scored."""
    kinds = [k for k in operators.MUTATIONS if k != "reflect"]
    kind = "reflect" if parent.feedback and rng.random() < 0.5 else rng.choice(kinds)
    child, why = operators.mutate(ctx, parent, kind, wants, rng)
    return keep(store, child, why, run, generation)


def keep(store, child: Genome, why: str, run: int, generation: int) -> Genome:
    """Archive a child; when the model's own child was unusable, archive that failure too."""
    child.run, child.generation = run, generation
    if why:
        archive.add(store, Genome(child.prompt, child.lora, child.sampling, child.parents,
                                  child.operator.split(":")[0] + ":llm", generation, run, status="invalid", note=why))
    return archive.add(store, child)


def genome_key(genome: Genome) -> tuple:
    return genome.prompt, genome.lora, json.dumps(genome.sampling, sort_keys=True)


def fresh(store, child: Genome, seen: set) -> bool:
    """Is the child new to this generation? A copy is archived as invalid, and not scored twice."""
    if genome_key(child) in seen:
        archive.mark(store, child.id, "invalid", "the same prompt, adapter and sampling as a member")
        return False
    seen.add(genome_key(child))
    return True
