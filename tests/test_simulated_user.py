"""The agent learns from engagement: a simulated user with hidden preferences (short answers,
no football, thanks when pleased) talks to it for 100 turns through the real graph, SQLite,
reward, bandit and self_rewrite code; only the chat model is fake (tests/simulated_user.py:
an instruction-following stand-in and a noisy prompt optimizer). The learning agent's reward
rises above the same agent's with learning frozen, its probation keeps some rewrites and
rolls others back, and its policy learns the concise style; with feedback acting directly
(graph/learning/feedback.py) the reward is high within a few turns. The bench
(tests/bench/bench_learning.py) prints the curves, and runs the real embedded model too."""

import pytest
from simulated_user import (
    HARMFUL,
    HELPFUL,
    SimulatedChat,
    SimulatedUser,
    new_session,
    settings,
    simulate,
)

from graph.learning import feedback, reward, selfprompt, strategy

SEEDS, TURNS = (0, 1, 2), 100


def run(tmp_path, make_config, name: str, seed: int = 0, frozen: bool = False, **learning):
    config = make_config(settings(**learning), name=f"{name}.yaml")
    model = SimulatedChat(seed=seed)
    session = new_session(tmp_path / name, config, model)
    return simulate(session, SimulatedUser(seed=seed), TURNS, frozen=frozen, seed=seed), model, session


@pytest.mark.policy
def test_reward_rises_above_the_frozen_agent_and_probation_keeps_and_rolls_back(tmp_path, make_config):
    """Three seeded conversations (different questions, reactions, guesses and policy samples),
    each with learning on and with learning frozen from the first turn (/learn off). The direct
    route from feedback to behaviour is off (learning.feedback), so the reward must rise through
    the policy and the prompt rewrites; test_feedback_acts_within_a_few_turns has it on."""
    gains, concise, complete = [], 0, 0
    for seed in SEEDS:
        learned, model, session = run(tmp_path, make_config, f"learning-{seed}", seed, feedback=False)
        frozen, frozen_model, frozen_session = run(tmp_path, make_config, f"frozen-{seed}", seed, frozen=True)
        curves = (seed, learned.curve(), frozen.curve())

        # every answer was judged and every reward settled, in both runs
        assert len(learned.rewards) == len(frozen.rewards) == TURNS
        # the learning agent ends above the frozen one, and above where it started
        assert learned.mean(last=50) > frozen.mean(last=50) + 0.15, curves
        assert learned.mean(last=30) > frozen.mean(last=30), curves
        assert learned.mean(last=50) > learned.mean(first=20) + 0.2, curves
        gains.append(learned.mean(last=50) - frozen.mean(last=50))

        # its own rewrites went through probation: some kept, some rolled back (with the numbers)
        mine = [v for v in learned.history if v.author == "agent"]
        kept = [v for v in mine if (v.outcome or "").startswith("kept after probation")]
        rolled = [v for v in mine if v.status == "rolled_back"]
        assert kept and rolled, [(v.id, v.status, v.outcome) for v in learned.history]
        assert all("worse on probation: mean reward" in v.outcome for v in rolled)
        # the rollbacks caught harmful rules; the version kept last has the helpful rules and no harmful one
        assert any(set(HARMFUL.values()) & set(selfprompt.split(v.text)[1]) for v in rolled)
        active = [v for v in learned.history if v.status == "active"][-1]
        rules = set(selfprompt.split(active.text)[1])
        assert HELPFUL["length"] in rules and not set(HARMFUL.values()) & rules, (seed, rules)
        complete += set(HELPFUL.values()) <= rules  # (10 seeds of the bench: 8 end with both helpful rules)
        assert model.rewrites  # the model was asked (llm.structured, the rewrite metaprompt)

        # the policy: detailed is the worst style for plain English questions
        styles = {row["arm"]: row["mean"] for row in learned.policy
                  if row["bucket"] == "en-simple" and row["factor"] == "style"}
        assert min(styles, key=styles.get) == "detailed", (seed, styles)
        concise += learned.best["en-simple"]["style"] == "concise"

        # Japanese turns are rewarded too (ありがとう is praise)
        ja = [r for r in reward.recent(session.ctx.store, 1000) if r.bucket.startswith("ja")]
        assert ja and max(r.reward for r in ja) > 0

        # frozen: rewards recorded, but nothing changed
        assert [v.author for v in frozen.history] == ["config"] and not frozen_model.rewrites
        assert strategy.table(frozen_session.ctx.store) == []

    assert sum(gains) / len(gains) > 0.25, gains
    assert complete >= 2  # both helpful rules learned and kept in most conversations
    assert concise >= 2  # the policy's best style is concise (default ties with it once a brevity rule is kept)


@pytest.mark.policy
def test_the_policy_alone_learns_the_concise_style(tmp_path, make_config):
    """With prompt rewrites off (rewrite_every 0, no reward-drop trigger) and no direct route from
    feedback (learning.feedback), the strategy policy alone raises the reward above the frozen
    agent's, by learning the concise style."""
    frozen, _, _ = run(tmp_path, make_config, "frozen", frozen=True)
    learned, model, session = run(tmp_path, make_config, "policy", rewrite_every=0, reward_drop=2, feedback=False)
    store = session.ctx.store
    assert not model.rewrites and len(selfprompt.history(store)) == 1
    assert strategy.best(store, "en-simple")["style"] == "concise"
    assert learned.mean(last=50) > frozen.mean(last=50) + 0.2, (learned.curve(), frozen.curve())


@pytest.mark.policy
def test_feedback_acts_within_a_few_turns(tmp_path, make_config):
    """With the direct route on (the default), "Too long." makes the next answers short at once
    (a standing preference, a fixed style and length budget): the first 20 turns already earn more
    than the rewrite-and-policy route earns there, and more than the frozen agent."""
    for seed in SEEDS:
        direct, model, session = run(tmp_path, make_config, f"direct-{seed}", seed)
        slow, _, _ = run(tmp_path, make_config, f"slow-{seed}", seed, feedback=False)
        frozen, _, _ = run(tmp_path, make_config, f"frozen-{seed}", seed, frozen=True)
        curves = (seed, direct.curve(), slow.curve(), frozen.curve())
        assert direct.mean(first=20) > slow.mean(first=20) + 0.2, curves
        assert direct.mean(first=20) > frozen.mean(first=20) + 0.4, curves
        assert direct.mean() > slow.mean(), curves
        assert "short" in feedback.standing(session.ctx.store)
        assert any(s.startswith("noted: shorter answers from now on") for s in direct.statuses)
        later = model.seen[20:]
        assert sum(s["brief"] for s in later) == len(later)  # every answer after it is told to be brief


@pytest.mark.policy
def test_the_loop_runs_with_the_real_embedded_model(tmp_path, make_config):
    """A short conversation with the real embedded model (SmolLM2-135M): every answer is judged
    and rewarded, the policy is updated, and the model is asked for rewrites (grammar-constrained
    JSON) whose proposals are validated: put on probation or rejected with the reason. (Whether it
    learns is the bench's question: tests/bench/bench_learning.py.)"""
    # self_rewrite "on": `auto` never asks the embedded model for rules (selfprompt.asks_model)
    config = make_config(settings(rewrite_every=2, probation_turns=2, self_rewrite="on") | {
        "llm": {"backend": "embedded", "max_tokens": 64}}, name="embedded.yaml")
    session = new_session(tmp_path / "embedded", config, None)
    assert session.backend.name == "embedded"
    result = simulate(session, SimulatedUser(seed=SEEDS[0]), 4, seed=SEEDS[0])
    assert len(result.rewards) == 4 and all(answer.strip() for answer in result.answers)
    assert {row["factor"] for row in result.policy} == set(strategy.FACTORS)
    attempts = [e for e in result.log if e["kind"] in ("prompt", "rejected", "probation")]
    assert attempts, result.log  # the model's proposals went through validation (kept, judged or refused)
    for entry in attempts:
        assert entry["detail"]


def test_simulated_user_and_model_behave_as_described():
    """The fixtures themselves: the user's reactions carry the cues reward.py reads, and the
    model follows the instructions it is given."""
    user = SimulatedUser(seed=3)
    first = user.first()
    assert first.endswith(("?", "？"))
    long = "word " * 60
    said = user.react(long + "football")
    components = reward.next_action(first, said, None, 0)
    assert components.get("complaint") == -0.4 and "praise" not in components
    assert said.endswith(("?", "？"))  # a question: never read as a standing instruction
    happy = user.react("Canberra.")
    assert reward.next_action(said, happy, None, 0).get("praise", 0) >= 0  # thanks, or a plain "OK."

    from langchain_core.messages import HumanMessage, SystemMessage

    from graph.models import prompts

    model = SimulatedChat(seed=1)
    plain = model.invoke([SystemMessage("You are a helpful assistant."), HumanMessage("What is an atom?")]).text
    brief = model.invoke([SystemMessage("You are a helpful assistant."), HumanMessage("What is an atom?"),
                          SystemMessage(prompts.STYLES["concise"])]).text
    ruled = model.invoke([SystemMessage(selfprompt.compose("You are a helpful assistant.",
                                                           [HELPFUL["length"], HELPFUL["topic"]])),
                          HumanMessage("What is an atom?")]).text
    assert len(plain.split()) > 40 >= len(brief.split()) and len(ruled.split()) <= 40
    assert "football" not in ruled.lower()
    harmful = model.invoke([SystemMessage(selfprompt.compose("You are a helpful assistant.",
                                                             [HELPFUL["length"], HARMFUL["topic"]])),
                            HumanMessage("What is an atom?")]).text
    assert "football" in harmful.lower()
