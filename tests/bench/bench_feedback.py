"""Does repeated feedback change the answers within a few turns? Simulated users, each with one
hidden preference and its own rule, talk to the agent with learning on and with learning frozen.

    python tests/bench/bench_feedback.py [--turns 30] [--seed 0] [--model scripted|embedded|both]
                                         [--users short,bullets,plain,english,topic] [--standing-after 2]
                                         [--runs learning,frozen]

Users (every one asks the questions of tests/simulated_user.py and starts its next message
with its reaction, the way a person would):
  short    wants answers of at most 50 words; else "Too long, shorter please." / 「長すぎます。短くして。」
  bullets  wants a bulleted list (two or more lines starting with "- ", "* " or "1."); else
           "Use bullet points, please."
  plain    wants plain sentences (no markdown: no headings, lists, tables or bold); else
           "No markdown please, just plain sentences."
  mixed    wants at most 50 words, except on four questions (picked by the seed) where it wants
           more than 50; else "Too long, shorter please." or "Too short, more detail please." (the
           cost of making a preference stand after too few repetitions)
  english  asks in Japanese, wants the answer in English (under 10% Japanese characters); else
           「英語で答えてください。」
  topic    asks about sports and places without naming football (SPORTS: SmolLM2 never brings
           football up on the other users' questions), wants no football (football, soccer, サッカー)
           in the answers, and an answer that addresses the question (`addresses`: eight words
           or more, one of them a word the question calls for, no sentence said three times); else "Please don't talk about
           football." (a topic ban: feedback.py's "Do not bring up football unless the user asks.",
           and its sentences left out: formats.leaving_out), or "That doesn't answer my question."
           The scripted model picks football for nine in ten of its examples on these sports questions
           (half on the other users' questions)
A satisfied user says "Thanks!" (「ありがとう！」). Satisfaction is the user's own rule, judged here,
not the agent's reward.

Models: `scripted` is an instruction-following stand-in (tests/simulated_user.py's SimulatedChat
answering at length by default, with a bold heading, following the style, format and language
instructions it is sent); `embedded` is the real SmolLM2-135M through llama.cpp (slow: a few
seconds per turn). Each (user, model) runs `--turns` judged answers twice in fresh data folders:
learning (everything on) and frozen (/learn off before the first message). Printed per run:
satisfaction per 10 turns, mean answer length (characters) per 10 turns, seconds per turn (wall
time) and CPU seconds per turn (this process and the model's: fair when others share the
machine), the answers' tokens and their prompts' tokens per 10 turns, how many times the window
was folded into a summary (one more model call each; the JSON has each turn's CPU seconds), the
standing preferences and the policy's style and think plays. `--standing-after` sets how many
repetitions make a standing preference (feedback.STANDING_AFTER), to measure it; `--runs` picks
the runs (one of them, to repeat it after a change that the other does not see). The last line
of stdout is one JSON object with the numbers.
"""

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil
import yaml
from simulated_user import (
    DISLIKED,
    EN,
    JA,
    JAPANESE,
    SimulatedChat,
    new_session,
    settings,
    simulate,
)

from graph.learning import feedback, strategy

MARKDOWN = re.compile(r"^\s*(#{1,6} |[-*•] |\d+[.)] |\|)|\*\*", re.MULTILINE)
BULLET = re.compile(r"^\s*([-*•] |\d+[.)] )", re.MULTILINE)

# The topic user's questions, each with the words an answer that addresses it uses (any one, or a sport's name
# where the question asks for sports): SmolLM2 answered some with junk after a ban ("You've already provided
# the final answer."), which has no football in it and answers nothing.
GAMES = r"volleyball|basketball|tennis|rugby|cricket|baseball|hockey|golf|swimming|running|athletics|cycling|" \
        r"badminton|handball|boxing|judo|skiing|gymnastics|martial arts|table tennis|capoeira"
SPORTS = {"what sports are popular in Brazil?": rf"brazil|{GAMES}", "what sports are popular in England?": rf"england|{GAMES}",
          "what is a team sport?": r"team", "what sports do children play at school?": rf"school|child|{GAMES}",
          "what is a stadium?": r"stadium|venue|arena|seat", "what does a referee do?": r"referee|rule|official",
          "what sports are played with a ball?": r"ball", "what is a good sport to play with friends?": rf"friend|{GAMES}",
          "what is a sports league?": r"league|team|season", "what games are popular in Europe?": rf"europe|game|{GAMES}"}
ANSWERED = 8  # words at least in an answer that addresses the question


def addresses(question: str, answer: str) -> bool:
    """Whether the answer addresses the topic user's question: at least `ANSWERED` words, one of them
    a word the question calls for (SPORTS), and no sentence said three times (SmolLM2's loops: "It is
    also played by adults, and it is also played by children." over and over)."""
    said = [" ".join(s.split()).lower() for s in re.split(r"(?<=[.!?])\s+", answer) if s.strip()]
    return len(re.findall(r"[A-Za-z']+", answer)) >= ANSWERED and \
        re.search(rf"\b({SPORTS[question]})", answer, re.IGNORECASE) is not None and \
        all(said.count(s) < 3 for s in set(said))


def words(text: str) -> int:
    return len(re.findall(r"[A-Za-z0-9']+", text)) + round(0.4 * len(JAPANESE.findall(text)))


class User:
    """Asks questions; judges each answer by its own rule; reacts (see the module docstring)."""

    def __init__(self, kind: str, seed: int):
        import random

        self.kind, self.rng = kind, random.Random(seed)
        self.pool = list(JA) if kind == "english" else list(SPORTS) if kind == "topic" else list(EN)
        self.question, self.answer, self.log = "", "", []
        self.deep = set(self.rng.sample(self.pool, 4)) if kind == "mixed" else set()

    def ok(self, answer: str) -> bool:
        if self.kind in ("short", "mixed"):
            return (words(answer) > 50) == (self.question in self.deep)
        if self.kind == "bullets":
            return len(BULLET.findall(answer)) >= 2
        if self.kind == "plain":
            return not MARKDOWN.search(answer)
        if self.kind == "topic":
            return not DISLIKED.search(answer) and addresses(self.question, answer)
        return len(JAPANESE.findall(answer)) < 0.1 * max(1, len(answer.strip()))

    def complaint(self) -> str:
        ja = bool(JAPANESE.search(self.question))
        if self.question in self.deep:
            return "Too short, more detail please."
        return {"short": "長すぎます。短くして。" if ja else "Too long, shorter please.", "mixed": "Too long, shorter please.",
                "bullets": "Use bullet points, please.", "plain": "No markdown please, just plain sentences.",
                "english": "英語で答えてください。",
                "topic": "Please don't talk about football." if DISLIKED.search(self.answer) else
                "That doesn't answer my question."}[self.kind]

    def first(self) -> str:
        self.question = self.rng.choice(self.pool)
        return self.question[:1].upper() + self.question[1:]

    def react(self, answer: str) -> str:
        self.answer, good = answer, self.ok(answer)
        self.log.append(good)
        reaction = ("ありがとう！" if JAPANESE.search(self.question) else "Thanks!") if good else self.complaint()
        self.question = self.rng.choice([q for q in self.pool if q != self.question])
        return f"{reaction} {self.question[:1].upper() + self.question[1:]}"


EN_OF = {"光合成": "photosynthesis", "素数": "prime number", "インフレ": "inflation", "俳句": "haiku", "火山": "volcano"}
ENGLISH = re.compile(r"\banswer in english\b", re.IGNORECASE)
AS_BULLETS = re.compile(r"bulleted list", re.IGNORECASE)
AS_PLAIN = re.compile(r"plain sentences only", re.IGNORECASE)


class FormatChat(SimulatedChat):
    """SimulatedChat with a format: a bold heading by default, a bulleted list or plain sentences
    when told, English for a Japanese question when told, and the topic user's question named in
    its answer (which then addresses it)."""

    def answer(self, messages) -> str:
        thought, _, text = super().answer(messages).rpartition("</think>")
        told = "\n".join(m.text for m in messages if m.type == "system")
        said = next((m.text for m in reversed(messages) if m.type == "human"), "")
        asked = next((q for q in SPORTS if q.lower() in said.lower()), None)
        if asked:  # the topic user's questions, which SimulatedChat does not know
            text = text.replace("Here is the short answer to your question.", f"Here is the short answer to {asked}")
        if ENGLISH.search(told) and JAPANESE.search(text):
            topic = next((en for ja, en in EN_OF.items() if ja in said), "that")
            key = next((q for q in EN if topic in q), None)
            text = EN[key][1] if key else f"Here is the answer about {topic}."
        sentences = [s for s in re.split(r"(?<=[.。])\s*", text) if s]
        if AS_BULLETS.search(told):
            text = "\n".join(f"- {s}" for s in sentences)
        elif not AS_PLAIN.search(told):
            text = f"**Answer**\n{text}"
        return f"{thought}</think>{text}" if thought else text


def cpu_seconds() -> float:
    """CPU time of this process and its children (the embedded model's process)."""
    me = psutil.Process(os.getpid())
    return sum(sum(p.cpu_times()[:2]) for p in [me, *me.children(recursive=True)])


def run_one(root: Path, user_kind: str, model_kind: str, frozen: bool, turns: int, seed: int) -> dict:
    name = f"{user_kind}-{model_kind}-{'frozen' if frozen else 'learning'}"
    folder = root / name
    folder.mkdir(parents=True)
    config = settings()
    if model_kind == "embedded":
        config["llm"] = {"backend": "embedded"}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    model = FormatChat(seed=seed, football=0.9 if user_kind == "topic" else 0.5) if model_kind == "scripted" else None
    session = new_session(folder / "home", path, model)
    user = User(user_kind, seed)
    stamps, cpu = [time.perf_counter()], [cpu_seconds()]

    def progress(i, answer):
        stamps.append(time.perf_counter())
        cpu.append(cpu_seconds())
        if model_kind == "embedded":
            print(f"  [{name} {i}/{turns + 1} {stamps[-1] - stamps[-2]:.1f}s] {' '.join(answer.split())[:70]!r}",
                  file=sys.stderr, flush=True)

    run = simulate(session, user, turns, frozen=frozen, seed=seed, progress=progress)
    store = session.ctx.store
    plays = {f"{r['factor']}:{r['arm']}": r["n"] for r in strategy.table(store) if r["factor"] in ("style", "think")}
    kept = list(feedback.standing(store))
    metas = [row["meta"] for row in store.history() if row["role"] == "assistant" and row["meta"]][:turns]
    out_tokens = [m.get("tokens", 0) for m in metas]
    in_tokens = [m.get("context_tokens", 0) - m.get("tokens", 0) for m in metas]
    session.ctx.services.close()
    answers = run.answers[:turns]
    seconds = [b - a for a, b in pairwise(stamps)][:turns]
    cpus = [max(0.0, b - a) for a, b in pairwise(cpu)][:turns]
    ok = user.log  # judged when the user reacted (the rule may depend on the question)
    tens = range(0, turns, 10)
    return {"name": name, "satisfied": [sum(ok[i:i + 10]) / len(ok[i:i + 10]) for i in tens],
            "chars": [round(sum(map(len, answers[i:i + 10])) / len(answers[i:i + 10])) for i in tens],
            "s_per_turn": [round(sum(seconds[i:i + 10]) / len(seconds[i:i + 10]), 4) for i in tens],
            "cpu_s_per_turn": [round(sum(cpus[i:i + 10]) / len(cpus[i:i + 10]), 4) for i in tens],
            "tokens_out": [round(sum(out_tokens[i:i + 10]) / max(1, len(out_tokens[i:i + 10]))) for i in tens],
            "tokens_in": [round(sum(in_tokens[i:i + 10]) / max(1, len(in_tokens[i:i + 10]))) for i in tens],
            "folds": sum("folded" in s for s in run.statuses), "cpu_s": [round(c, 4) for c in cpus],
            "standing": kept, "plays": plays}


def show(rows: list[dict]) -> None:
    print(f"  {'run':<30} {'satisfied per 10 turns':<24} {'mean chars per 10':<22} {'s/turn per 10':<20}"
          f" {'CPU s/turn per 10':<20} standing")
    for r in rows:
        sat = " ".join(f"{v:.1f}" for v in r["satisfied"])
        chars = " ".join(f"{v:>5}" for v in r["chars"])
        secs = " ".join(f"{v:6.3f}" for v in r["s_per_turn"])
        cpus = " ".join(f"{v:6.3f}" for v in r["cpu_s_per_turn"])
        print(f"  {r['name']:<30} {sat:<24} {chars:<22} {secs:<20} {cpus:<20} {','.join(r['standing']) or '-'}")
        print(f"  {'':<30} tokens out {r['tokens_out']}, prompt tokens {r['tokens_in']} per 10;"
              f" summaries {r['folds']}; plays: {r['plays']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", choices=["scripted", "embedded", "both"], default="scripted")
    ap.add_argument("--users", default="short,bullets,plain,english,topic,mixed")
    ap.add_argument("--standing-after", type=int, default=feedback.STANDING_AFTER)
    ap.add_argument("--runs", default="learning,frozen")
    args = ap.parse_args()
    feedback.STANDING_AFTER = args.standing_after
    models = ["scripted", "embedded"] if args.model == "both" else [args.model]
    root = Path(tempfile.mkdtemp(prefix="bench-feedback-"))
    out = {}
    try:
        for model in models:
            print(f"== {model} model, {args.turns} judged answers per run, seed {args.seed},"
                  f" standing after {args.standing_after} ==")
            rows = []
            for kind in args.users.split(","):
                for frozen in [run == "frozen" for run in args.runs.split(",")]:
                    rows.append(run_one(root, kind, model, frozen, args.turns, args.seed))
                    print(f"  (done) {json.dumps(rows[-1])}", file=sys.stderr, flush=True)  # a long run's partial result
            show(rows)
            for kind in args.users.split(",") if args.runs == "learning,frozen" else []:
                a, b = (next(r for r in rows if r["name"] == f"{kind}-{model}-{m}") for m in ("learning", "frozen"))
                ratio = a["satisfied"][-1] / b["satisfied"][-1] if b["satisfied"][-1] else float("inf")
                slower = a["s_per_turn"][-1] / max(1e-9, b["s_per_turn"][-1])
                busier = a["cpu_s_per_turn"][-1] / max(1e-9, b["cpu_s_per_turn"][-1])
                print(f"  {kind:<8} last 10: learning {a['satisfied'][-1]:.1f} vs frozen {b['satisfied'][-1]:.1f}"
                      f" (x{ratio:.1f}); time learning/frozen {slower:.2f}, CPU time {busier:.2f},"
                      f" chars {a['chars'][-1]} vs {b['chars'][-1]}")
            out[model] = rows
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
