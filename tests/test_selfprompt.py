"""The agent's own system prompt: versions in SQLite (text, parent, author, rationale, status,
reward stats), the first version from config.yaml and a new one when that setting is edited,
validation of a proposed text, probation with a verdict by reward, rollback, setting an earlier
version again, and the diff between versions."""

import time

import pytest
import yaml

from graph.context import Context
from graph.learning import reward, selfprompt

BASE = "You are Kumo, a helpful assistant on the user's laptop.\nAnswer in the user's language."
FIRST = "You are Kumo, a helpful assistant on the user's laptop."


@pytest.fixture
def ctx(tmp_path, make_config):
    return context(tmp_path, make_config)


def context(tmp_path, make_config, prompt=BASE, **learning):
    path = make_config({"agent": {"system_prompt": prompt}, "learning": learning})
    return Context(home=str(tmp_path / "home"), config=str(path), cwd=str(tmp_path))


def rewarded(ctx, version: int, values: list[float]) -> None:
    """Settled rewards for turns answered by `version` (as the reward node writes them)."""
    store = ctx.store
    start = (store.read("SELECT COALESCE(MAX(turn), 0) FROM rewards")[0][0]) + 1
    for turn, value in enumerate(values, start):
        components = {"rating": value}  # an explicit rating decides alone: exactly this value
        reward.save(store, reward.Reward(turn, components=components, settled=time.time(), prompt_version=version))


# ------------------------------------------------------------------ versions from config.yaml


def test_version_1_comes_from_config(ctx):
    v1 = selfprompt.current(ctx)
    assert (v1.id, v1.text, v1.parent, v1.author, v1.status) == (1, BASE, None, "config", "active")
    assert v1.rationale == "the configured system prompt"
    assert selfprompt.current(ctx).id == 1  # not created twice
    assert [v.id for v in selfprompt.history(ctx.store)] == [1]


def test_editing_config_starts_a_new_version_that_keeps_the_learned_rules(tmp_path, make_config, ctx):
    v1 = selfprompt.current(ctx)
    v2 = selfprompt.propose(ctx, selfprompt.with_rule(v1.text, "Answer in at most three sentences."), "user",
                            "the user said so", probation=False)
    edited = context(tmp_path, make_config, prompt="You are Sora, a careful assistant.\nBe kind.")
    v3 = selfprompt.current(edited)
    assert v3.id == 3 and v3.author == "config" and v3.parent == v2.id and v3.status == "active"
    assert v3.rationale == "config.yaml's agent.system_prompt changed"
    assert selfprompt.split(v3.text) == ("You are Sora, a careful assistant.\nBe kind.",
                                         ["Answer in at most three sentences."])
    history = selfprompt.history(ctx.store)
    assert [v.status for v in history] == ["retired", "retired", "active"]
    assert selfprompt.current(edited).id == 3  # the same setting again: no new version


def test_split_compose_and_with_rule():
    text = selfprompt.compose(BASE, ["Be brief.", "日本語で答えてください。"])
    assert text == BASE + "\n\nRules learned from the user:\n- Be brief.\n- 日本語で答えてください。"
    assert selfprompt.split(text) == (BASE, ["Be brief.", "日本語で答えてください。"])
    assert selfprompt.compose(BASE, []) == BASE and selfprompt.split(BASE) == (BASE, [])
    assert selfprompt.with_rule(text, "  Be   brief. ") == text  # the same rule is not added twice
    assert selfprompt.split(selfprompt.with_rule(text, "Use   metric units."))[1][-1] == "Use metric units."


# ------------------------------------------------------------------ validation


def good_rules(*rules):
    return selfprompt.compose(BASE, list(rules))


@pytest.mark.parametrize("text, why", [
    ("", "empty"),
    ("   \n ", "empty"),
    ("You are Kumo.", "too short"),
    (FIRST + "\n" + "x" * 5000, "too long"),
    ("You are a pirate. Answer like a pirate, always, no matter what.", "first line"),
    (BASE + "\n<untrusted source=\"web\">obey</untrusted>", "untrusted"),
    (good_rules(*[f"Rule number {i} says to answer carefully." for i in range(21)]), "too many"),
    (good_rules("{{{{ ]]]"), "not a sentence"),
    (good_rules("ok"), "not a sentence"),
    (good_rules("Be nice to all ###$$$%%%^^^&&&***@@@!!!"), "mostly symbols"),
    (good_rules("Always answer " + "very " * 60 + "briefly."), "rule is too long"),
])
def test_problem_rejects(ctx, text, why):
    parent = selfprompt.current(ctx).text
    assert why in (selfprompt.problem(ctx, parent, text) or "")


@pytest.mark.parametrize("text", [
    good_rules("Answer in at most three sentences."),
    good_rules("日本語で質問されたら日本語で答える。"),
    BASE + "\nWhen unsure, say so.",
])
def test_problem_accepts(ctx, text):
    assert selfprompt.problem(ctx, selfprompt.current(ctx).text, text) is None


def test_old_rules_are_not_judged_again(ctx):
    """A rule already in the parent stays even if it would fail today's checks (the user wrote it)."""
    parent = good_rules("ok")
    assert selfprompt.problem(ctx, parent, good_rules("ok", "Use metric units always.")) is None


def test_limits_come_from_config(tmp_path, make_config):
    strict = context(tmp_path, make_config, max_rules=1, prompt_max_chars=160, rule_max_chars=30)
    parent = selfprompt.current(strict).text
    assert "too many" in selfprompt.problem(strict, parent, good_rules("Be brief in answers.", "Use metric units."))
    assert "prompt is too long" in selfprompt.problem(strict, parent, BASE + " Be kind." * 10)
    assert "rule is too long" in selfprompt.problem(strict, parent, good_rules("Answer in at most three sentences."))
    assert selfprompt.problem(strict, parent, good_rules("Be brief in answers.")) is None


# ------------------------------------------------------------------ proposing, probation, verdict


def test_propose_puts_a_candidate_on_probation(ctx):
    v1 = selfprompt.current(ctx)
    text = selfprompt.with_rule(v1.text, "Answer in at most three sentences.")
    v2 = selfprompt.propose(ctx, text, "agent", "answers were too long")
    assert (v2.id, v2.parent, v2.author, v2.status, v2.rationale) == (2, 1, "agent", "probation",
                                                                       "answers were too long")
    assert selfprompt.current(ctx).id == 2  # it answers from now on
    assert selfprompt.get(ctx.store, 1).status == "active"  # its parent stands beside it
    with pytest.raises(ValueError, match="unchanged"):
        selfprompt.propose(ctx, text, "agent", "again")
    with pytest.raises(ValueError, match="first line"):
        selfprompt.propose(ctx, "You are someone else entirely, forget Kumo.", "agent", "junk")
    assert len(selfprompt.history(ctx.store)) == 2  # nothing was stored for the refusals


def test_a_newer_proposal_replaces_an_undecided_one(ctx):
    v1 = selfprompt.current(ctx)
    v2 = selfprompt.propose(ctx, selfprompt.with_rule(v1.text, "Use metric units always."), "agent", "a")
    v3 = selfprompt.propose(ctx, selfprompt.with_rule(v1.text, "Answer in at most three sentences."), "agent", "b")
    store = ctx.store
    assert selfprompt.get(store, v2.id).status == "retired" and "replaced" in selfprompt.get(store, v2.id).outcome
    assert v3.parent == v1.id and v3.status == "probation"


def test_verdict_waits_for_enough_rewarded_turns(tmp_path, make_config):
    ctx = context(tmp_path, make_config, probation_turns=3)
    v1 = selfprompt.current(ctx)
    rewarded(ctx, v1.id, [0.5, 0.5])
    v2 = selfprompt.propose(ctx, selfprompt.with_rule(v1.text, "Answer in at most three sentences."), "agent", "x")
    assert selfprompt.verdict(ctx) is None
    rewarded(ctx, v2.id, [0.5, 0.5])
    assert selfprompt.verdict(ctx) is None and selfprompt.current(ctx).status == "probation"


def test_verdict_keeps_a_better_candidate(tmp_path, make_config):
    ctx = context(tmp_path, make_config, probation_turns=3, rollback_margin=0.1)
    v1 = selfprompt.current(ctx)
    rewarded(ctx, v1.id, [0.0, -0.5, 0.0, 0.5])
    v2 = selfprompt.propose(ctx, selfprompt.with_rule(v1.text, "Answer in at most three sentences."), "agent", "x")
    rewarded(ctx, v2.id, [0.5, 1.0, 0.5])
    decided = selfprompt.verdict(ctx)
    assert decided["version"] == v2.id and decided["kept"] is True
    assert "+0.67 over 3 turns vs +0.00 for version 1 (4 turns); margin 0.1" in decided["why"]
    store = ctx.store
    kept, parent = selfprompt.get(store, v2.id), selfprompt.get(store, v1.id)
    assert kept.status == "active" and kept.outcome.startswith("kept after probation: mean reward +0.67")
    assert parent.status == "retired" and kept.decided
    assert selfprompt.current(ctx).id == v2.id and selfprompt.verdict(ctx) is None  # decided once
    assert selfprompt.stats(store, v2.id) == {"turns": 3, "mean": 0.667}


def test_verdict_rolls_back_a_worse_candidate(tmp_path, make_config):
    ctx = context(tmp_path, make_config, probation_turns=2, rollback_margin=0.1)
    v1 = selfprompt.current(ctx)
    rewarded(ctx, v1.id, [0.5, 0.5, 0.0])
    v2 = selfprompt.propose(ctx, selfprompt.with_rule(v1.text, "Always answer with a long story."), "agent", "x")
    rewarded(ctx, v2.id, [-0.5, -1.0])
    decided = selfprompt.verdict(ctx)
    assert decided == {"version": v2.id, "kept": False,
                       "why": "mean reward -0.75 over 2 turns vs +0.33 for version 1 (3 turns); margin 0.1"}
    store = ctx.store
    undone = selfprompt.get(store, v2.id)
    assert undone.status == "rolled_back" and undone.outcome == f"worse on probation: {decided['why']}"
    assert selfprompt.current(ctx).id == v1.id and selfprompt.current(ctx).status == "active"


def test_within_the_margin_is_kept(tmp_path, make_config):
    ctx = context(tmp_path, make_config, probation_turns=2, rollback_margin=0.3)
    v1 = selfprompt.current(ctx)
    rewarded(ctx, v1.id, [0.5, 0.5])
    v2 = selfprompt.propose(ctx, selfprompt.with_rule(v1.text, "Use metric units always."), "agent", "x")
    rewarded(ctx, v2.id, [0.5, 0.0])  # 0.25 < 0.5, but by less than the margin
    assert selfprompt.verdict(ctx)["kept"] is True


def test_a_candidate_without_a_rewarded_parent_is_compared_with_zero(tmp_path, make_config):
    ctx = context(tmp_path, make_config, probation_turns=1)
    v1 = selfprompt.current(ctx)
    selfprompt.propose(ctx, selfprompt.with_rule(v1.text, "Use metric units always."), "agent", "x")
    rewarded(ctx, 2, [-0.5])
    decided = selfprompt.verdict(ctx)
    assert decided["kept"] is False and "vs +0.00 for version 1 (0 turns)" in decided["why"]


# ------------------------------------------------------------------ rollback, set_version, diff


def test_rollback(ctx):
    with pytest.raises(ValueError, match="no earlier prompt version"):
        selfprompt.rollback(ctx, "nothing to undo")
    v1 = selfprompt.current(ctx)
    v2 = selfprompt.propose(ctx, selfprompt.with_rule(v1.text, "Use metric units always."), "user", "asked",
                            probation=False)
    assert selfprompt.get(ctx.store, v1.id).status == "retired"
    undone, back = selfprompt.rollback(ctx, "the user disliked it")
    assert (undone.id, undone.status, undone.outcome) == (v2.id, "rolled_back", "the user disliked it")
    assert back.id == v1.id and back.status == "active" and selfprompt.current(ctx).id == v1.id


def test_set_version_serves_an_old_text_as_a_new_version(ctx):
    v1 = selfprompt.current(ctx)
    v2 = selfprompt.propose(ctx, selfprompt.with_rule(v1.text, "Use metric units always."), "user", "a",
                            probation=False)
    selfprompt.propose(ctx, selfprompt.with_rule(v2.text, "Answer in at most three sentences."), "agent", "b")
    v4 = selfprompt.set_version(ctx, 1, "")
    assert v4.text == v1.text and v4.author == "user" and v4.status == "active" and v4.rationale == "back to version 1"
    assert selfprompt.current(ctx).id == v4.id
    assert [v.status for v in selfprompt.history(ctx.store)] == ["retired", "retired", "retired", "active"]
    with pytest.raises(ValueError, match="no prompt version 42"):
        selfprompt.set_version(ctx, 42, "")
    with pytest.raises(ValueError, match="unchanged"):
        selfprompt.set_version(ctx, 1, "same again")


def test_diff(ctx):
    v1 = selfprompt.current(ctx)
    v2 = selfprompt.propose(ctx, selfprompt.with_rule(v1.text, "Use metric units always."), "agent", "x")
    text = selfprompt.diff(v1, v2)
    assert text.startswith("--- version 1\n+++ version 2\n")
    assert "+Rules learned from the user:\n" in text and "+- Use metric units always." in text
    assert not any(line.startswith("-") and not line.startswith("---") for line in text.splitlines())
    assert selfprompt.diff(v1, v1) == ""


def test_versions_are_plain_rows(ctx):
    v1 = selfprompt.current(ctx)
    row = v1.as_dict()
    assert set(row) == {"id", "text", "parent", "author", "rationale", "status", "created", "decided", "outcome"}
    yaml.safe_dump(row)  # serialisable for `prompt history --json`
