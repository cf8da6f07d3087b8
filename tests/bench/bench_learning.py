"""Does the agent learn from engagement? A simulated user with hidden preferences talks to it.

    python tests/bench/bench_learning.py [--turns 100] [--seed 0] [--seeds 10]
                                         [--embedded-turns 24] [--embedded-rewrite-every 6] [--no-embedded]

The user of tests/simulated_user.py (wants answers of at most 40 words, dislikes football,
thanks when pleased, says "Too long." or "Please don't talk about football." when not, sometimes
re-asks) talks through `Session.turn`: the real graph, SQLite, reward, bandit and self_rewrite.

1. Fake model (tests/simulated_user.py's SimulatedChat: follows the instructions it is given;
   a noisy prompt optimizer when asked for a rewrite), `--turns` judged answers, seed `--seed`,
   five agents in fresh data folders:
   learning (everything on), frozen (/learn off before the first message: rewards recorded, no
   changes), off (learning.enabled false: the default strategy every turn), policy only (no
   prompt rewrites), rewrite only (no strategy policy). Prints the mean reward per 10 turns of
   each, the learning agent's prompt history (version, status, author, parent, rules, rationale,
   outcome), its policy table and its learning log, then a summary over seeds 0..--seeds-1
   (learning vs frozen, kept and rolled-back rewrites).
2. The real embedded model (SmolLM2-135M-Instruct via llama.cpp, the default backend without
   Ollama): `--embedded-turns` answers with learning on, rewrite_every `--embedded-rewrite-every`,
   then as many with learning frozen; reward per 10 turns, prompt history, the rewrites the
   model proposed (and why any was rejected), wall time per turn.

Settings for every run: tests/simulated_user.py's `settings` (a neutral system prompt, no
tools, no long-term memory; rewrite_every 8, probation_turns 6, reward_window 8, reward_drop
0.3, rollback_margin 0.1). Temporary folders are deleted at the end. The last line of stdout
is one JSON object with the curves.
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml
from simulated_user import SimulatedChat, SimulatedUser, new_session, settings, simulate

from graph.learning import selfprompt

AGENTS = {  # name: (frozen, learning settings)
    "learning": (False, {}),
    "frozen": (True, {}),
    "off": (False, {"enabled": False}),
    "policy only": (False, {"rewrite_every": 0, "reward_drop": 2}),
    "rewrite only": (False, {"policy": False}),
}


def one(root: Path, name: str, seed: int, turns: int, frozen: bool, learning: dict, model=None, extra=None,
        progress=None):
    folder = root / f"{name.replace(' ', '-')}-{seed}"
    folder.mkdir(parents=True)
    config = settings(**learning)
    for key, value in (extra or {}).items():
        config[key] = {**config.get(key, {}), **value}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    session = new_session(folder / "home", path, model)
    result = simulate(session, SimulatedUser(seed=seed), turns, frozen=frozen, seed=seed, progress=progress)
    session.ctx.services.close()
    return result


def curve_line(name: str, run) -> str:
    cells = " ".join(f"{v:+.2f}" for v in run.curve())
    return (f"  {name:<13} {cells}   | all {run.mean():+.2f}  last 50 {run.mean(last=50):+.2f}"
            f"  last 30 {run.mean(last=30):+.2f}")


def excluded_line(run) -> str:
    """The learning agent's curve without the turns answered by candidates that were rolled back:
    what the prompts it kept earned, apart from the cost of trying bad ones."""
    from graph.learning import reward

    bad = {v.id for v in run.history if v.status == "rolled_back"}
    cells, costs = [], []
    for i in range(0, len(run.rewards), 10):
        chunk = run.versions[i:i + 10]
        kept = [r for r, v in zip(run.rewards[i:i + 10], chunk) if v not in bad]
        cells.append(f"{reward.mean(kept):+.2f}" if kept else "  n/a")
        costs.append(str(sum(v in bad for v in chunk)))
    return (f"  {'learning*':<13} {' '.join(cells)}\n  {'rolled-back':<13} {' '.join(f'{c:>5}' for c in costs)}\n"
            "  (* the learning agent without the turns answered by candidates that were later rolled back;"
            " rolled-back: how many of each 10 turns those were)")


def show_learned(learned) -> None:
    """A learning agent's prompt history, learned policy and learning log."""
    show_history(learned)
    print()
    show_policy(learned)
    print("\n  learning log (prompt changes, probation verdicts, rejected rewrites):")
    for entry in learned.log:
        if entry["kind"] in ("prompt", "probation", "rejected"):
            print(f"  turn {entry['turn']:>3} {entry['kind']:<9} {entry['detail']}")


def show_history(run) -> None:
    print("  prompt history (version, status, author, parent; learned rules; rationale; outcome):")
    for v in run.history:
        rules = selfprompt.split(v.text)[1]
        print(f"  v{v.id:<3} {v.status:<11} {v.author:<7} parent {v.parent or '-'}")
        print(f"       rules: {rules or '(none)'}")
        print(f"       why: {v.rationale}")
        if v.outcome:
            print(f"       outcome: {v.outcome}")


def show_policy(run) -> None:
    print("  policy (bucket, factor: arm mean reward estimate / plays; * = best):")
    rows: dict = {}
    for row in run.policy:
        rows.setdefault((row["bucket"], row["factor"]), []).append(row)
    for (bucket, factor), arms in rows.items():
        best = run.best.get(bucket, {}).get(factor)
        cells = "  ".join(f"{'*' if r['arm'] == best else ' '}{r['arm']} {r['mean']:+.2f}/{r['n']}" for r in arms)
        print(f"  {bucket:<11} {factor:<11} {cells}")


def fake_part(args, root: Path) -> dict:
    print(f"== fake model (SimulatedChat), seed {args.seed}, {args.turns} judged answers per agent ==")
    runs = {}
    for name, (frozen, learning) in AGENTS.items():
        model = SimulatedChat(seed=args.seed)
        runs[name] = one(root, name, args.seed, args.turns, frozen, learning, model)
        runs[name].model = model
    print("mean reward per 10 turns (turns 1-10, 11-20, ...):")
    for name, run in runs.items():
        print(curve_line(name, run) + f"  ({run.seconds:.1f} s, {1000 * run.seconds / (args.turns + 1):.0f} ms/turn)")
    learned = runs["learning"]
    print(excluded_line(learned))
    print("\nlearning agent:")
    show_learned(learned)

    print(f"\nsummary over seeds 0..{args.seeds - 1} (learning vs frozen, {args.turns} turns each):")
    print("  seed  learning last50  frozen last50  gain   learning last30  frozen last30   kept  rolled back")
    summary = []
    for seed in range(args.seeds):
        a = one(root, "sweep-learning", seed, args.turns, False, {}, SimulatedChat(seed=seed))
        b = one(root, "sweep-frozen", seed, args.turns, True, {}, SimulatedChat(seed=seed))
        kept = sum(1 for v in a.history if (v.outcome or "").startswith("kept"))
        rolled = sum(1 for v in a.history if v.status == "rolled_back")
        summary.append((a.mean(last=50), b.mean(last=50)))
        print(f"  {seed:>4}  {a.mean(last=50):+15.2f}  {b.mean(last=50):+13.2f}  {a.mean(last=50) - b.mean(last=50):+.2f}"
              f"  {a.mean(last=30):+15.2f}  {b.mean(last=30):+13.2f}  {kept:>5}  {rolled:>11}")
    gain = sum(x - y for x, y in summary) / len(summary)
    wins = sum(x > y for x, y in summary)
    print(f"  mean gain (last 50) {gain:+.2f}; learning above frozen in {wins}/{len(summary)} seeds")
    return {name: run.curve() for name, run in runs.items()}


def embedded_part(args, root: Path) -> dict:
    from graph.models.embedded import DEFAULT_LABEL

    print(f"\n== real embedded model ({DEFAULT_LABEL}, llama.cpp on CPU), seed {args.seed},"
          f" {args.embedded_turns} judged answers, rewrite_every {args.embedded_rewrite_every},"
          f" probation_turns {args.embedded_probation} ==")
    learning = {"rewrite_every": args.embedded_rewrite_every, "probation_turns": args.embedded_probation}
    extra = {"llm": {"backend": "embedded"}}
    out = {}
    for name, frozen in (("learning", False), ("frozen", True)):
        start = time.perf_counter()

        def progress(i, answer, start=start, name=name):
            print(f"  [{name} {i}/{args.embedded_turns + 1} {time.perf_counter() - start:.0f}s]"
                  f" {' '.join(answer.split())[:90]!r}", file=sys.stderr, flush=True)

        run = one(root, f"embedded-{name}", args.seed, args.embedded_turns, frozen, learning, None, extra, progress)
        out[name] = run
    print("mean reward per 10 turns:")
    for name, run in out.items():
        words = [len(a.split()) for a in run.answers]
        print(curve_line(name, run) + f"  ({run.seconds:.0f} s, {run.seconds / (args.embedded_turns + 1):.1f} s/turn;"
              f" answer words median {sorted(words)[len(words) // 2]})")
    learned = out["learning"]
    print("\nlearning agent (embedded):")
    show_learned(learned)
    print("\n  a few answers (learning agent, first and last):")
    for i in (0, 1, len(learned.answers) - 2, len(learned.answers) - 1):
        print(f"  answer {i + 1}: {' '.join(learned.answers[i].split())[:200]!r}")
    return {name: run.curve() for name, run in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=10, help="seeds in the learning-vs-frozen summary")
    ap.add_argument("--embedded-turns", type=int, default=24, help="at least 1 (--no-embedded skips that part)")
    ap.add_argument("--embedded-rewrite-every", type=int, default=6)
    ap.add_argument("--embedded-probation", type=int, default=4)
    ap.add_argument("--no-embedded", action="store_true")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-learning-"))
    try:
        result = {"fake": fake_part(args, root)}
        if not args.no_embedded:
            result["embedded"] = embedded_part(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
