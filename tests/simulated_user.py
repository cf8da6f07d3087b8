"""A simulated user with hidden preferences, a fake chat model that follows instructions, and
the loop that lets them talk through the real agent: the evidence that the agent learns.

What it is: `SimulatedUser` asks questions (mostly English, some Japanese) and reacts to each
answer in its next message, the way the reward node reads it: it wants short answers (at most
`max_words` words; a Japanese character counts as 0.4 of a word) and dislikes one topic
(football). A pleasing answer earns thanks (or a plain "OK." now and then); a long one "Too
long."; one that mentions football "Please don't talk about football."; after a bad answer it
sometimes asks the same question again. The reaction is prefixed to the next question ("Thanks!
Next: what is DNS?"), so every message both judges the last answer and asks something new. It
never states its preferences as a standing instruction ("from now on ..."): the agent has to
find them out from reactions.

`SimulatedChat` stands in for an instruction-following LLM. It reads only the instructions it
is given, never the user's earlier complaints: the system messages (the system prompt with its
learned rules; the per-turn style message of the learned policy) and the user's last message.
By default it answers at length (the answer, an elaboration and an example); it answers in a
sentence (plus, half the time, a short example) when told to be brief (the concise style,
"Keep answers under 30 words.", "Be concise."), adds a background section when told to be
thorough or to add background, and picks its examples at random (half of them football)
unless told never to mention football or to use football examples (when told both, the later
instruction wins). Asked by `llm.structured`
with the self_rewrite metaprompt, it is a noisy prompt optimizer: half the time it reads the
user's reactions in the digest and fixes the most frequent complaint (adds the helpful rule, or
removes a rule that causes it), otherwise it adds a random rule from a pool of helpful, harmful
and neutral ones, so probation has changes to keep and changes to roll back. Asked to
summarize, it lists the questions' topics (nothing about the user's reactions). Deterministic
given its seed.

`simulate` runs the conversation through `Session.turn` (the real graph, SQLite, reward,
bandit, self_rewrite); only the chat model is fake (or, in the bench, the real embedded
model). Used by tests/test_simulated_user.py and tests/bench/bench_learning.py.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.outputs import ChatGenerationChunk
from pydantic import Field, PrivateAttr

from graph.models import prompts
from fakes import ScriptedChat

# A neutral system prompt: it says nothing about answer length (the configured default says
# "concisely", which an instruction-following model would obey from the first turn, leaving
# nothing about length to learn).
SYSTEM_PROMPT = ("You are a helpful assistant running locally on the user's computer.\n"
                 "Answer in the language the user writes in.\n")

# question → (topic, one-sentence answer)
EN = {
    "what is photosynthesis?": ("photosynthesis", "Plants turn light, water and carbon dioxide into sugar and oxygen."),
    "what is a prime number?": ("prime numbers", "A whole number above one divisible only by one and itself."),
    "what does DNS do?": ("DNS", "It translates domain names into the IP addresses computers use."),
    "what is inflation?": ("inflation", "A general rise in prices that lowers what money can buy."),
    "what is a black hole?": ("black holes", "A region where gravity is so strong that not even light escapes."),
    "what is the capital of Australia?": ("Australia", "The capital of Australia is Canberra."),
    "what is a vaccine?": ("vaccines", "A preparation that trains the immune system to recognise a germ."),
    "what is machine learning?": ("machine learning", "Programs that improve at a task by learning from data."),
    "what is a haiku?": ("haiku", "A short Japanese poem of three lines with five, seven and five syllables."),
    "what causes tides?": ("tides", "Mainly the Moon's gravity pulling on the oceans as the Earth turns."),
    "what is an API?": ("APIs", "A defined way for one program to ask another for data or actions."),
    "what is compound interest?": ("compound interest", "Interest earned on both the money saved and past interest."),
    "what is a glacier?": ("glaciers", "A slowly moving mass of ice formed from compacted snow."),
    "what is the speed of light?": ("light", "About 300,000 kilometres per second in a vacuum."),
    "what is a sonnet?": ("sonnets", "A fourteen-line poem with a fixed rhyme scheme."),
    "what is an atom?": ("atoms", "The smallest unit of an element: a nucleus with electrons around it."),
    "what does a CPU do?": ("CPUs", "It executes a program's instructions, one small step at a time."),
    "what is a volcano?": ("volcanoes", "An opening in the crust where molten rock, ash and gas escape."),
    "why is the sky blue?": ("the sky", "Air scatters blue sunlight more than red, so blue comes from every direction."),
    "why do leaves change colour in autumn?": ("autumn leaves", "Chlorophyll breaks down and reveals yellow and red pigments."),
}
JA = {
    "光合成とは何ですか？": ("光合成", "植物が光と水と二酸化炭素から糖と酸素を作る働きです。"),
    "素数とは何ですか？": ("素数", "1とその数自身でしか割り切れない、1より大きい整数です。"),
    "インフレとは何ですか？": ("インフレ", "物価が全体的に上がり、お金の価値が下がることです。"),
    "俳句とは何ですか？": ("俳句", "五・七・五の十七音で作る日本の短い詩です。"),
    "火山とは何ですか？": ("火山", "地下のマグマが地表に噴き出す場所です。"),
}
QUESTIONS = {**EN, **JA}
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
DISLIKED = re.compile(r"football|soccer|サッカー", re.IGNORECASE)

# The user's reactions (every one is a cue reward.py knows; at most one sentence each, so that
# reaction + question stays a "simple" message for the policy's context bucket).
PLEASED = {"en": ["Thanks!", "Great, thanks.", "Perfect, that's what I needed.", "Nice, thank you."],
           "ja": ["ありがとう！", "助かりました。", "なるほど、ありがとう。"]}
NEUTRAL = {"en": ["OK.", "Alright."], "ja": ["はい。", "了解。"]}
TOO_LONG = {"en": ["Too long.", "That was too long, I only needed the gist.", "Too verbose for me."],
            "ja": ["長すぎます。", "ちょっと長いです。"]}
TOPIC = {"en": ["Please don't talk about football.", "Don't mention football, please.", "Stop talking about football."],
         "ja": ["その話はやめてください。"]}
BOTH = {"en": ["Too long, and please don't talk about football.", "Too long, and stop talking about football."],
        "ja": ["長すぎるし、その話はやめてください。"]}
NEXT = {"en": ["Next: ", "Another question: ", "Now, ", "And ", ""], "ja": ["次の質問です：", "では、", ""]}
AGAIN = {"en": ["Again: ", "Let me ask again: "], "ja": ["もう一度聞きます：", "改めて："]}


def size(text: str) -> float:
    """Length in words (a Japanese character counts as 0.4 of a word)."""
    return len(re.findall(r"[A-Za-z0-9']+", text)) + 0.4 * len(JAPANESE.findall(text))


class SimulatedUser:
    """Asks questions and reacts to answers by hidden preferences (see the module docstring)."""

    def __init__(self, seed: int = 0, max_words: int = 40, japanese: float = 0.15, thanks: float = 0.85,
                 reask: float = 0.3):
        self.rng = random.Random(seed)
        self.max_words, self.japanese, self.thanks, self.reask = max_words, japanese, thanks, reask
        self.question = ""
        self.log: list[dict] = []  # one row per judged answer

    def first(self) -> str:
        self.question = self._pick()
        return self._cap(self.question)

    def judge(self, answer: str) -> dict:
        words = size(answer)
        return {"question": self.question, "words": round(words, 1), "too_long": words > self.max_words,
                "disliked": bool(DISLIKED.search(answer))}

    def react(self, answer: str) -> str:
        """The next message: a reaction to `answer` (the answer to the last question) and a question."""
        verdict = self.judge(answer)
        bad = verdict["too_long"] or verdict["disliked"]
        again = bad and self.rng.random() < self.reask
        question = self.question if again else self._pick()
        lang = "ja" if JAPANESE.search(question) else "en"
        if verdict["too_long"] and verdict["disliked"]:
            reaction = self.rng.choice(BOTH[lang])
        elif verdict["too_long"]:
            reaction = self.rng.choice(TOO_LONG[lang])
        elif verdict["disliked"]:
            reaction = self.rng.choice(TOPIC[lang])
        else:
            reaction = self.rng.choice(PLEASED[lang] if self.rng.random() < self.thanks else NEUTRAL[lang])
        lead = self.rng.choice(AGAIN[lang] if again else NEXT[lang])
        self.log.append({**verdict, "reaction": reaction, "reasked": again})
        self.question = question
        return f"{reaction} {lead}{question if lead else self._cap(question)}"

    def _pick(self) -> str:
        pool = list(JA if self.rng.random() < self.japanese else EN)
        choices = [q for q in pool if q != self.question] or pool
        return self.rng.choice(choices)

    @staticmethod
    def _cap(text: str) -> str:
        return text[:1].upper() + text[1:]


# --- the fake model -------------------------------------------------------------------------

BRIEF = re.compile(r"\b(answer briefly|be (brief|concise)|concise(ly)?|keep (your )?answers (short|brief)|"
                   r"short answers?|under \d+ words|one to three sentences)\b|短く|簡潔", re.IGNORECASE)
THOROUGH = re.compile(r"\b(answer thoroughly|long background|background section|in detail|more detail)\b|詳しく",
                      re.IGNORECASE)
AVOID_FOOTBALL = re.compile(r"\b(never|don'?t|do not|avoid|no)\b[^.\n]*\bfootball\b", re.IGNORECASE)
USE_FOOTBALL = re.compile(r"\buse football\b|\bfootball examples\b", re.IGNORECASE)

EXAMPLES = {"football": ("a football team passing the ball to move up the pitch", "サッカーのチームがパスを回すこと"),
            "cooking": ("following a recipe in a kitchen", "台所でレシピ通りに料理すること"),
            "trains": ("a train timetable that everyone relies on", "みんなが頼りにする電車の時刻表"),
            "library": ("looking a book up in a library catalogue", "図書館の目録で本を探すこと")}

# The noisy optimizer's rules: (rule, what it changes) — helpful, harmful and neutral.
HELPFUL = {"length": "Keep answers under 30 words.", "topic": "Never mention football."}
HARMFUL = {"length": "Always add a long background section.", "topic": "Use football examples to explain things."}
NEUTRAL_RULES = ["Use plain everyday words.", "Avoid jargon where you can."]
POOL = [*HELPFUL.values(), *HARMFUL.values(), *NEUTRAL_RULES]
LENGTH_COMPLAINT = re.compile(r"too long|too verbose|the gist|長すぎ|長い", re.IGNORECASE)
TOPIC_COMPLAINT = re.compile(r"football|その話", re.IGNORECASE)


class SimulatedChat(ScriptedChat):
    """An instruction-following stand-in for an LLM (see the module docstring)."""

    seed: int = 0
    insight: float = 0.5  # share of rewrites that fix the most frequent complaint (the rest: a random rule)
    football: float = 0.5  # share of unconstrained examples about football
    seen: list = Field(default_factory=list)  # per answer: the instructions it followed, for assertions and the bench
    rewrites: list = Field(default_factory=list)  # per rewrite request: what it proposed
    _rng: random.Random = PrivateAttr()

    def model_post_init(self, _context: Any) -> None:
        self._rng = random.Random(self.seed)

    @property
    def _llm_type(self) -> str:
        return "simulated"

    def _stream(self, messages, stop=None, run_manager=None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        self.replies = [self.reply(messages, **{k: v for k, v in kwargs.items() if k != "tools"})]
        yield from super()._stream(messages, stop, run_manager, **kwargs)  # streamed word by word, as ScriptedChat does

    # -- what it says --

    def reply(self, messages, **kwargs) -> str:
        asked = messages[-1].text if messages else ""
        if len(messages) == 1 and asked.startswith(prompts.REWRITE.split("{")[0][:40]):
            return json.dumps(self.optimize(asked))
        if len(messages) == 1 and asked.startswith(prompts.JUDGE.split("{")[0][:40]):
            return json.dumps(self.score(asked))
        if len(messages) == 1 and (asked.startswith(prompts.CROSSOVER.split("{")[0][:40])
                                   or "Current rules:" in asked and "\"rules\"" in asked):
            return json.dumps(self.breed(asked))
        if "format" in kwargs:  # another structured request (memory, ...): nothing to offer
            return "{}"
        if len(messages) == 1 and asked.startswith(prompts.SUMMARIZE.split("{")[0][:40]):
            return self.summarize(asked)
        return self.answer(messages)

    def answer(self, messages) -> str:
        last_human = max((i for i, m in enumerate(messages) if m.type == "human"), default=-1)
        said = messages[last_human].text if last_human >= 0 else ""
        told = "\n".join(m.text for m in messages[:1] if m.type == "system")
        told += "\n" + "\n".join(m.text for m in messages[last_human + 1:]
                                 if m.type == "system" and m.text != prompts.THINK)
        think = any(m.type == "system" and m.text == prompts.THINK for m in messages[last_human + 1:])
        brief, thorough = bool(BRIEF.search(told)), bool(THOROUGH.search(told))
        # contradicting rules about football: the later one wins
        last_avoid = max((m.end() for m in AVOID_FOOTBALL.finditer(told)), default=-1)
        last_use = max((m.end() for m in USE_FOOTBALL.finditer(told)), default=-1)
        avoid, use = last_avoid > last_use, last_use > last_avoid
        question = next((q for q in QUESTIONS if q.lower() in said.lower()), None)
        topic, core = QUESTIONS.get(question, ("that", "Here is the short answer to your question."))
        ja = bool(JAPANESE.search(said))
        if avoid:
            example = self._rng.choice([k for k in EXAMPLES if k != "football"])
        elif use or self._rng.random() < self.football:
            example = "football"
        else:
            example = self._rng.choice([k for k in EXAMPLES if k != "football"])
        with_example = use or not brief or self._rng.random() < 0.5
        parts = [core]
        if not brief:
            parts.append(ELABORATE[ja].format(topic=topic))
        if thorough:
            parts.append(BACKGROUND[ja].format(topic=topic))
        if with_example:
            parts.append((SHORT_EXAMPLE if brief else EXAMPLE)[ja].format(example=EXAMPLES[example][ja]))
        self.seen.append({"brief": brief, "thorough": thorough, "avoid_football": avoid, "use_football": use,
                          "example": example if with_example else None})
        text = " ".join(parts)
        return f"<think>The user asks about {topic}. Answer it.</think>{text}" if think else text

    def summarize(self, request: str) -> str:
        topics = [topic for q, (topic, _) in QUESTIONS.items() if q.lower() in request.lower()]
        return ("Earlier the user asked about: " + ", ".join(dict.fromkeys(topics)) + ".") if topics else \
            "Earlier the user asked some questions."

    def optimize(self, request: str) -> dict:
        """A noisy prompt optimizer: {"add": [...], "remove": [...], "why": ...}."""
        _, _, listed = request.partition("Learned rules:\n")
        rules = re.findall(r"^(\d+)\. (.+)$", listed.split("\n\n")[0], re.MULTILINE) if listed else []
        have = {text.strip(): int(n) for n, text in rules}
        reactions = re.findall(r"^User's next message: (.*)$", request, re.MULTILINE)
        counts = {"length": sum(bool(LENGTH_COMPLAINT.search(r)) for r in reactions),
                  "topic": sum(bool(TOPIC_COMPLAINT.search(r)) for r in reactions)}
        # rules the request says were rolled back (the metaprompt may list them): not proposed again
        failed = {r for r in POOL if re.search(rf"rolled back[^\n]*{re.escape(r)}|{re.escape(r)}[^\n]*rolled back",
                                                 request, re.IGNORECASE)}
        if self._rng.random() < self.insight:  # read the reactions: fix the most frequent complaint, or nothing
            proposal = {"add": [], "remove": [], "why": "the recent reactions show no complaint to fix"}
            for kind in sorted((k for k in counts if counts[k]), key=lambda k: -counts[k]):
                if HARMFUL[kind] in have:
                    proposal = {"add": [], "remove": [have[HARMFUL[kind]]],
                                "why": f"{counts[kind]} recent complaints point at the rule '{HARMFUL[kind]}'"}
                    break
                if HELPFUL[kind] not in have and HELPFUL[kind] not in failed:
                    proposal = {"add": [HELPFUL[kind]], "remove": [],
                                "why": f"{counts[kind]} of the recent reactions complain about this"}
                    break
        else:  # a guess
            rule = self._rng.choice([r for r in POOL if r not in have and r not in failed] or POOL)
            proposal = {"add": [rule], "remove": [], "why": "this may help the user"}
        self.rewrites.append({**proposal, "counts": counts})
        return proposal


    def score(self, request: str) -> dict:
        """The scripted judge of the evolution: the hidden preferences, 0..10."""
        answer = request.split("\nAnswer: ", 1)[-1].rsplit("\n\nScore the answer", 1)[0]
        too_long, disliked = size(answer) > 40, bool(DISLIKED.search(answer))
        why = " and ".join(w for w, bad in (("too long", too_long), ("mentions football", disliked)) if bad)
        return {"score": 10 - 5 * too_long - 5 * disliked, "why": why or "short and on topic"}

    def breed(self, request: str) -> dict:
        """A noisy breeding operator: crossover keeps each parent's rule with probability 0.7;
        mutation adds a random rule from the pool, removes one, keeps them (rephrase), or, given
        failed cases, fixes what the judge complained about (half the time) or guesses."""
        lists = re.findall(r"^\d+\. (.+)$", request, re.MULTILINE)
        if request.startswith(prompts.CROSSOVER.split("{")[0][:40]):
            rules = [r for r in dict.fromkeys(lists) if self._rng.random() < 0.7]
            self.rewrites.append({"crossover": rules})
            return {"rules": rules, "why": "kept the rules of both"}
        rules = list(lists)
        task = request.split("\n", 1)[0]
        if task == prompts.MUTATE["remove"] and rules:
            rules.pop(self._rng.randrange(len(rules)))
        elif task == prompts.MUTATE["add"] or (task == prompts.MUTATE["reflect"] and self._rng.random() < 0.5):
            rules.append(self._rng.choice([r for r in POOL if r not in rules] or POOL))
        elif task == prompts.MUTATE["reflect"]:
            for kind, cue in (("length", "too long"), ("topic", "football")):
                if cue in request.split("Current rules:", 1)[-1]:
                    rules = [r for r in rules if r != HARMFUL[kind]] + ([HELPFUL[kind]] * (HELPFUL[kind] not in rules))
        self.rewrites.append({"mutate": task, "rules": rules})
        return {"rules": rules, "why": "this may help the user"}


ELABORATE = {False: "In more detail, {topic} is a subject with several parts worth knowing, and each of them "
                    "matters for the whole picture, so it helps to look at how they fit together and why people "
                    "care about {topic} in everyday life.",
             True: "もう少し詳しく言うと、{topic}にはいくつかの大事な側面があり、それぞれが全体像にとって重要なので、"
                   "それらがどう組み合わさっているか、なぜ日常生活で{topic}が大切なのかを見ておくと役に立ちます。"}
BACKGROUND = {False: "Background: the study of {topic} has a long history, with many researchers adding pieces "
                     "over the centuries, and the modern understanding rests on decades of careful observation, "
                     "measurement and debate about what the evidence really shows.",
              True: "背景：{topic}の研究には長い歴史があり、何世紀にもわたって多くの研究者が知見を積み重ね、"
                    "現代の理解は何十年にも及ぶ観察と測定と議論の上に成り立っています。"}
EXAMPLE = {False: "For example, think of {example}, where the same idea shows up step by step.",
           True: "例えば、{example}を思い浮かべてください。同じ考え方が少しずつ現れます。"}
SHORT_EXAMPLE = {False: "Like {example}.", True: "{example}のようなものです。"}


# --- the conversation ---------------------------------------------------------------------

def settings(**learning) -> dict:
    """config.yaml settings for a simulated run (tools and long-term memory off: what is tested
    is the answers and the learning from reactions)."""
    return {"agent": {"system_prompt": SYSTEM_PROMPT, "max_tool_rounds": 0},
            "memory": {"enabled": False}, "evolution": {"every_turns": 0},
            "learning": {"enabled": True, "policy": True, "rewrite_every": 8, "probation_turns": 6,
                         "reward_window": 8, "reward_drop": 0.3, "rollback_margin": 0.1, **learning}}


@dataclass
class Run:
    rewards: list[float] = field(default_factory=list)  # per turn, in order (settled ones)
    turns: list[int] = field(default_factory=list)
    versions: list[int | None] = field(default_factory=list)  # the prompt version that answered each turn
    answers: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)  # the agent's status lines (rewrites, probation)
    seconds: float = 0.0
    history: list = field(default_factory=list)  # selfprompt.Version
    policy: list[dict] = field(default_factory=list)  # strategy.table
    best: dict = field(default_factory=dict)  # bucket → strategy.best
    log: list[dict] = field(default_factory=list)  # learning log

    def curve(self, every: int = 10) -> list[float]:
        return [round(sum(chunk) / len(chunk), 3) for chunk in
                (self.rewards[i:i + every] for i in range(0, len(self.rewards), every)) if chunk]

    def mean(self, first: int | None = None, last: int | None = None) -> float:
        values = self.rewards[-last:] if last else self.rewards[:first] if first else self.rewards
        return sum(values) / len(values)


def simulate(session, user: SimulatedUser, turns: int, frozen: bool = False, seed: int = 0,
             progress=None) -> Run:
    """`turns` answers judged by the simulated user (turns + 1 messages: the last one only
    settles the reward of the last answer). `frozen`: /learn off before the first message."""
    from graph.learning import guard, reward, selfprompt, strategy

    random.seed(seed)  # strategy.choose samples with the global random
    ctx = session.ctx
    if frozen:
        guard.freeze(ctx, True)
    run = Run()
    start = time.perf_counter()
    text = user.first()
    for i in range(turns + 1):
        answer = []
        for kind, value in session.turn(text):
            if kind == "token":
                answer.append(value)
            elif kind == "status":
                run.statuses.append(value)
        answer = "".join(answer).strip()
        run.answers.append(answer)
        if i < turns:
            text = user.react(answer)
        if progress:
            progress(i + 1, answer)
    run.seconds = time.perf_counter() - start
    store = ctx.store
    settled = reward.recent(store, 100000)
    run.rewards = [r.reward for r in settled]
    run.turns = [r.turn for r in settled]
    run.versions = [r.prompt_version for r in settled]
    run.history = selfprompt.history(store)
    run.policy = strategy.table(store)
    run.best = {b: strategy.best(store, b) for b in sorted({row["bucket"] for row in run.policy})}
    run.log = guard.entries(store, 10000)
    return run


def new_session(home: Path, config: Path, model: BaseChatModel | None, context_window: int = 4096):
    """A Session in `home` with `config`, answering with `model` (None: the configured backend)."""
    from graph.context import Context
    from graph.models import llm
    from graph.session import Session

    ctx = Context(home=str(home), config=str(config), cwd=str(home.parent))
    if model is not None:
        ctx.services.put("backend", llm.Backend("fake", "simulated", model, context_window))
    return Session(ctx)
