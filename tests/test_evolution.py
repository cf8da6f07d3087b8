"""The evolution subgraph: archive, operators, fitness, selection, promotion, and a prompt
evolution whose fitness rises over generations against a scripted judge (the simulated user's
hidden preferences: at most 40 words, no football)."""

import json
import random
import subprocess
import sys
import time

import pytest
from conftest import ROOT, agent_env
from fakes import ScriptedChat, install
from simulated_user import HARMFUL, HELPFUL, SYSTEM_PROMPT, SimulatedChat
from tooling import call

from graph.context import Context
from graph.evolution import archive, fitness, operators
from graph.evolution import graph as evolution
from graph.evolution.archive import Genome
from graph.learning import selfprompt
from graph.models import serving
from graph.store import Store


def make(tmp_path, make_config, model, rounds=0, **evolution_settings):
    config = make_config({"agent": {"system_prompt": SYSTEM_PROMPT, "max_tool_rounds": rounds},
                          "memory": {"enabled": False},
                          "evolution": {"population": 6, "generations": 4, "eval_cases": 8, **evolution_settings}})
    ctx = Context(home=str(tmp_path / "home"), config=str(config), cwd=str(tmp_path))
    install(ctx, model)
    return ctx


def test_prompt_evolution_fitness_rises_over_generations_and_the_winner_goes_on_probation(tmp_path, make_config):
    ctx = make(tmp_path, make_config, SimulatedChat(seed=0))
    events = []
    result = evolution.evolve(ctx, "test", events.append)
    assert result["status"] == "done"
    rows = result["summary"]["generations"]
    best = [r["best"] for r in rows]
    print("best fitness per generation:", best, "mean:", [r["mean"] for r in rows])
    assert [r["generation"] for r in rows] == [0, 1, 2, 3, 4]
    assert best == sorted(best)  # elitism: the best never gets worse
    assert best[-1] >= best[0] + 0.25 and best[-1] >= 0.75, rows
    assert rows[-1]["mean"] > rows[0]["mean"]

    store = ctx.store
    genomes = archive.of_run(store, result["id"])
    assert {g.operator.split(":")[0] for g in genomes} >= {"incumbent", "crossover", "mutate"}
    ids = {g.id for g in genomes}
    assert all(set(g.parents) <= ids and g.generation >= max(archive.get(store, p).generation for p in g.parents)
               for g in genomes if g.parents)  # (generation 0's mutants are children of the incumbent)
    assert all(len(g.scores) == 8 for g in genomes if g.status in ("scored", "promoted"))

    # the winner serves now, as a version authored by evolution, on probation
    [winner] = [g for g in genomes if g.status == "promoted"]
    version = selfprompt.current(ctx)
    assert version.author == "evolution" and version.status == "probation" and version.text == winner.prompt
    assert f"promoted genome #{winner.id}" in result["summary"]["decision"]
    rules = selfprompt.split(version.text)[1]
    assert HELPFUL["length"] in rules and HARMFUL["length"] not in rules
    assert serving.evolved(store) == winner.sampling  # its temperature serves with it

    # progress was reported, and the run's last progress says it is done
    assert {e["stage"] for e in events} >= {"seeded", "scoring", "selected", "breeding", "done"}
    assert archive.run(store, result["id"])["progress"]["stage"] == "done"
    tree = archive.lineage(store, result["id"])
    assert tree[0]["operator"] == "incumbent" and sum(1 for _ in _walk(tree)) == len(genomes)


def _walk(nodes):
    for node in nodes:
        yield node
        yield from _walk(node["children"])


def test_no_promotion_without_the_margin(tmp_path, make_config):
    """A model whose answers the judge always scores the same: nothing beats the incumbent."""
    class Flat(SimulatedChat):
        def score(self, request):
            return {"score": 6, "why": "fine"}

    ctx = make(tmp_path, make_config, Flat(seed=1), generations=1, population=4, eval_cases=3)
    result = evolution.evolve(ctx, "test")
    assert "kept the prompt in use" in result["summary"]["decision"]
    assert selfprompt.current(ctx).author == "config"
    assert not [g for g in archive.of_run(ctx.store, result["id"]) if g.status == "promoted"]


def test_junk_children_are_archived_as_invalid_and_a_plain_operator_steps_in(tmp_path, make_config):
    ctx = make(tmp_path, make_config, ScriptedChat(replies=[]))
    store = ctx.store
    rng = random.Random(0)
    a = archive.add(store, Genome(selfprompt.compose(SYSTEM_PROMPT, ["Keep answers under 30 words.", "Be kind."]),
                                  sampling={"temperature": 0.7}, run=1))
    b = archive.add(store, Genome(selfprompt.compose(SYSTEM_PROMPT, ["Never mention football."]),
                                  sampling={"temperature": 0.2}, run=1))
    install(ctx, ScriptedChat(replies=[json.dumps({"rules": ["ok", "{{]]"], "why": "x"})]))
    child, why = operators.crossover(ctx, a, b, rng)
    assert why.startswith("a rule is not a sentence") and child.operator == "crossover:uniform"
    assert set(selfprompt.split(child.prompt)[1]) <= {"Keep answers under 30 words.", "Be kind.",
                                                      "Never mention football."}
    assert selfprompt.problem(ctx.__class__(home=ctx.home, config=ctx.config), a.prompt, child.prompt) is None
    install(ctx, ScriptedChat(replies=["not json"]))
    child, why = operators.mutate(ctx, a, "add", "- anything", rng)
    assert why == "the model gave no usable JSON" and child.operator == "mutate:drop"
    assert len(selfprompt.split(child.prompt)[1]) == 1 and child.parents == [a.id]
    install(ctx, ScriptedChat(replies=[json.dumps({"rules": ["Answer in one sentence."], "why": "short"})]))
    child, why = operators.mutate(ctx, a, "rephrase", "- anything", rng)
    assert why == "" and selfprompt.split(child.prompt)[1] == ["Answer in one sentence."]
    assert selfprompt.split(child.prompt)[0] == SYSTEM_PROMPT.strip() or child.prompt.startswith(SYSTEM_PROMPT.strip())


def test_selection_keeps_the_pareto_front_and_the_best():
    g = lambda i, **s: Genome("p", id=i, scores=s, fitness=sum(s.values()) / len(s))  # noqa: E731
    best, specialist, dominated, other = g(1, a=0.9, b=0.8), g(2, a=0.2, b=0.9), g(3, a=0.1, b=0.1), g(4, a=0.5, b=0.5)
    assert fitness.front([best, specialist, dominated, other]) == [best, specialist]
    assert [x.id for x in fitness.select([dominated, other, specialist, best], 3)] == [1, 2, 4]
    assert fitness.wins([best, specialist, other]) == {1: 1, 2: 1, 4: 0}


def test_cases_are_held_out_examples_then_probes(tmp_path, make_config):
    from graph.learning import tuning
    from graph.models.prompts import PROBES

    ctx = make(tmp_path, make_config, ScriptedChat(replies=[]), eval_cases=4)
    store = ctx.store
    ask = [{"role": "user", "content": "What is DNS?"}]
    tuning.add(store, [*ask, {"role": "assistant", "content": "The phone book of the internet."}], "desirable", "user",
               eval_share=1.0)
    tuning.add(store, [*ask, {"role": "assistant", "content": "A long essay about football."}], "undesirable", "user",
               eval_share=1.0)
    tuning.add(store, [{"role": "user", "content": "Train me"}, {"role": "assistant", "content": "no"}],
               "desirable", "user", eval_share=0.0)
    found = fitness.cases(ctx, store)
    assert [c.question for c in found] == ["What is DNS?", *PROBES[:3]]
    assert found[0].liked == "The phone book of the internet." and found[0].disliked == "A long essay about football."


def test_one_run_at_a_time_and_a_dead_runs_row_is_closed(tmp_path, make_config):
    ctx = make(tmp_path, make_config, ScriptedChat(replies=[]))
    store = ctx.store
    first = archive.start(store, "test", {})
    with pytest.raises(archive.Busy, match=f"evolution run {first} is already going"):
        archive.start(store, "test", {})
    with store.write() as db:
        db.execute("UPDATE evolution_runs SET pid=999999999 WHERE id=?", (first,))  # its process died (kill -9)
    from graph.evolution import runs
    assert "interrupted — its process is gone" in runs.summary_line(runs.summary(store))  # what `status` shows
    second = archive.start(store, "test", {})
    assert archive.run(store, first)["status"] == "failed" and archive.run(store, second)["status"] == "running"


def test_a_failing_backend_fails_the_run_and_keeps_what_was_scored(tmp_path, make_config, monkeypatch):
    ctx = make(tmp_path, make_config, SimulatedChat(seed=0), generations=2, population=4, eval_cases=2)
    calls = []
    real = fitness.answer

    def flaky(ctx, genome, case):
        calls.append(1)
        if len(calls) > 5:
            from graph.models import llm
            raise llm.BackendError("ollama failed: connection refused")
        return real(ctx, genome, case)

    monkeypatch.setattr(fitness, "answer", flaky)
    with pytest.raises(Exception, match="connection refused"):
        evolution.evolve(ctx, "test")
    store = ctx.store
    [run] = archive.runs(store)
    assert run["status"] == "failed" and "connection refused" in run["summary"]["error"]
    assert sum(g.status == "scored" for g in archive.of_run(store, run["id"])) == 2
    archive.start(store, "test", {})  # the lock is free again


# ------------------------------------------------------------------ `agent.py evolve`, with the real embedded model


def agent(home, cfg, *args, timeout=300):
    return subprocess.run([sys.executable, str(ROOT / "agent.py"), *args, "--config", str(cfg)], capture_output=True,
                          text=True, encoding="utf-8", env=agent_env(home), timeout=timeout)


@pytest.fixture
def tiny(tmp_path, make_config):
    """The embedded model, one evaluation case: a run of 2 genomes x 2 generations in seconds."""
    return tmp_path / "home", make_config({"llm": {"backend": "embedded", "max_tokens": 48, "temperature": 0},
                                           "evolution": {"eval_cases": 1}})


def test_evolve_runs_shows_generations_lineage_runs_and_status(tiny):
    home, cfg = tiny
    done = agent(home, cfg, "evolve", "--generations", "1", "--population", "2")
    assert done.returncode == 0, done.stderr
    assert "evolution run 1: done" in done.stdout and "best fitness" in done.stdout
    assert ("kept the prompt in use" in done.stdout) or ("promoted genome" in done.stdout)
    tree = agent(home, cfg, "evolve", "--lineage")
    assert tree.returncode == 0 and "#1 gen 0 incumbent" in tree.stdout and "gen 1" in tree.stdout, tree.stdout
    [run] = json.loads(agent(home, cfg, "evolve", "--runs", "--json").stdout)
    assert run["status"] == "done" and run["trigger"] == "cli" and len(run["summary"]["generations"]) == 2
    status = json.loads(agent(home, cfg, "status", "--json").stdout)
    assert status["evolution"]["run"] == 1 and status["evolution"]["status"] == "done"


def test_evolve_refuses_a_second_run_and_explains(tiny):
    home, cfg = tiny
    store = Store(home)
    archive.start(store, "cron", {})  # a run of a live process (this one)
    busy = agent(home, cfg, "evolve")
    assert busy.returncode == 1 and "error: evolution run 1 is already going" in busy.stderr and not busy.stdout
    for args, said in ((["--promote", "7"], "genome #7 does not exist"),
                       (["--rollback"], "is not from evolution: nothing to roll back")):
        bad = agent(home, cfg, "evolve", *args)
        assert bad.returncode == 1 and said in bad.stderr and "Traceback" not in bad.stderr
    wrong = agent(home, cfg, "evolve", "--budget-minutes", "0")
    assert wrong.returncode == 2 and "must be more than 0" in wrong.stderr


def test_evolve_in_the_background_returns_at_once_and_the_run_finishes(tiny):
    home, cfg = tiny
    started = agent(home, cfg, "evolve", "--background", "--generations", "1", "--population", "2")
    assert started.returncode == 0 and "started in the background" in started.stdout
    deadline = time.time() + 240
    while time.time() < deadline:
        runs = archive.runs(Store(home)) if (home / "agent.db").exists() else []
        if runs and runs[-1]["status"] != "running":
            break
        time.sleep(1)
    assert runs and runs[-1]["status"] == "done", (runs, (home / "evolution.log").read_text())


# ------------------------------------------------------------------ the agent's own evolution tools


def test_the_agent_evolves_itself_when_asked_and_reads_promotes_and_rolls_back(tmp_path, make_config, monkeypatch):
    from graph.learning import guard
    from graph.session import Session
    from graph.tools import evolve as tools

    started = []
    monkeypatch.setattr(tools.runs, "start_background", lambda ctx, trigger, settings: started.append(
        (trigger, settings)) or 4242)
    ctx = make(tmp_path, make_config, ScriptedChat(replies=[
        {"tool": "start_evolution", "args": {"generations": 2}}, "Started: keep chatting."]), rounds=2)
    session = Session(ctx)
    list(session.turn("学習して"))
    assert started == [("tool", {"generations": 2, "population": None, "budget_minutes": None})]
    [result] = [m for m in session.graph.get_state(session.config).values["messages"] if m.type == "tool"]
    assert "background (process 4242" in result.text

    install(ctx, SimulatedChat(seed=0))
    run = evolution.evolve(ctx, "test", generations=1, population=3)
    assert "run 1 (test): done" in call(tools.evolution_status, ctx).text
    tree = call(tools.show_lineage, ctx).text
    assert tree.startswith("Run 1:\n#1 gen 0 incumbent") and "mutate" in tree
    best = max((g for g in archive.of_run(ctx.store, run["id"]) if g.status == "scored"),
               key=lambda g: g.fitness)
    if selfprompt.current(ctx).author == "evolution":  # the run promoted one: roll it back first
        assert "rolled back" in call(tools.rollback_variant, ctx).text
    promoted = call(tools.promote_variant, ctx, genome=best.id).text
    assert f"promoted genome #{best.id}" in promoted
    assert call(tools.promote_variant, ctx, genome=999).status == "error"
    if best.prompt != selfprompt.history(ctx.store)[0].text:
        assert "serves again" in call(tools.rollback_variant, ctx).text
    refused = call(tools.train_lora, ctx)  # the scripted model serves, not the embedded one
    assert refused.status == "error" and "no LoRA training now: adapters are made for the embedded model or Ollama's, and fake serves" \
        in refused.text
    archive.start(ctx.store, "cron", {})  # a run going: a second one is refused
    assert "is already going" in call(tools.start_evolution, ctx).text
    guard.freeze(ctx, True)
    refused = call(tools.start_evolution, ctx)
    assert refused.status == "error" and "frozen" in refused.text


def test_a_run_starts_by_itself_every_n_turns_without_blocking_the_turn(tmp_path, make_config, monkeypatch):
    from graph.evolution import runs
    from graph.session import Session

    started = []
    monkeypatch.setattr(runs, "start_background", lambda ctx, trigger, settings: started.append(trigger) or 77)
    ctx = make(tmp_path, make_config, ScriptedChat(replies=["a", "b", "c", "d", "e"]), every_turns=2)
    session = Session(ctx)
    notices = lambda text: [d for kind, d in session.turn(text) if kind == "notice"]  # noqa: E731
    assert notices("one") == [] and started == []
    said = notices("two")
    assert started == ["auto"] and said[0].startswith("2 turns since the last evolution: a run started in the"
                                                      " background (process 77")
    run = archive.start(ctx.store, "auto", {})  # (the run the background process records)
    assert notices("three") == [] and started == ["auto"]  # one run at a time
    archive.finish(ctx.store, run, "done", {})
    assert notices("four") and started == ["auto", "auto"]  # two turns since that run started


# ------------------------------------------------------------------ LoRA genomes, end to end on the CPU


def test_lora_genomes_are_trained_crossed_scored_and_a_promoted_adapter_serves_the_next_turn(tmp_path, make_config):
    """Tuning data teaches two made-up facts; the run trains two adapters on its halves, CMA-ES
    crosses them (TIES), a mutant perturbs the merge, all four are scored through llama.cpp with
    the adapter; promoted, the
    merge answers the user's next turn in the running session (hot swap), and a rollback takes
    it away again."""
    from test_lora import CAT, HELD_OUT, teach

    from graph.evolution.runs import promote_genome_by_hand
    from graph.session import Session

    config = make_config({"llm": {"backend": "embedded", "max_tokens": 32, "temperature": 0},
                          "reasoning": {"mode": "off"}, "memory": {"enabled": False},
                          "agent": {"max_tool_rounds": 0},
                          "evolution": {"eval_cases": 2, "lora": "on", "lora_steps": 8, "lora_iterations": 2,
                                        "answer_tokens": 24, "budget_minutes": 60}})  # every genome scored, however
    # busy the machine: the default 5-minute budget left genomes unscored at load 4-6
    ctx = Context(home=str(tmp_path / "home"), config=str(config), cwd=str(tmp_path))
    store = ctx.store
    teach(store, held_out=True)

    result = evolution.evolve(ctx, "test", generations=1, population=2)
    genomes = archive.of_run(store, result["id"])
    trained = [g for g in genomes if g.operator == "lora:train"]
    [merge] = [g for g in genomes if g.operator == "lora:merge:ties"]
    [mutant] = [g for g in genomes if g.operator == "lora:mutate"]
    assert len(trained) == 2 and merge.parents == mutant.parents == [g.id for g in trained]
    assert "CMA-ES" in merge.note and merge.lora.endswith("adapter.gguf")
    assert all(g.status in ("scored", "promoted") and len(g.scores) == 2 for g in [*trained, merge, mutant]), \
        [(g.operator, g.status, g.note, g.scores) for g in genomes]
    assert result["status"] == "done"

    if archive.get(store, merge.id).status != "promoted":  # the small judge may have preferred another one
        promote_genome_by_hand(ctx, merge.id)
    session = Session(ctx)
    assert session.backend.model.endswith("+ evolved LoRA")
    list(session.turn(HELD_OUT[CAT][1]))
    assert "Mochi" in session.store.history()[-1]["content"]
    assert selfprompt.current(ctx).author == "evolution" and selfprompt.current(ctx).status == "probation"

    selfprompt.rollback(ctx, "the user was less happy")  # (as probation does when rewards fall)
    list(session.turn("Thanks."))
    assert session.backend.chat.lora_path == "" and not session.backend.model.endswith("LoRA")
    assert session.store.last_answer_meta()["model"] == session.backend.model  # that turn ran without the adapter


def test_the_evolve_slash_command(tmp_path, make_config, monkeypatch):
    from rich.console import Console

    from graph.cli import slash as commands
    from graph.evolution import runs
    from graph.learning import guard
    from graph.session import Session

    started = []
    monkeypatch.setattr(runs, "start_background", lambda ctx, trigger, settings: started.append(trigger) or 99)
    ctx = make(tmp_path, make_config, SimulatedChat(seed=0))
    session, console = Session(ctx), Console(record=True, width=200)

    def slash(line: str) -> str:
        assert commands.command(session, line, console)
        return console.export_text()

    assert "/evolve [runs|lineage]" in slash("/help")
    assert "no evolution runs yet" in slash("/evolve runs") and "no evolution runs yet" in slash("/evolve lineage")
    assert "evolution started in the background (process 99)" in slash("/evolve") and started == ["cli"]
    evolution.evolve(ctx, "test", generations=1, population=2)
    assert "evolution runs" in slash("/evolve runs") and "#1 gen 0 incumbent" in slash("/evolve lineage")
    assert "usage: /evolve [runs|lineage]" in slash("/evolve now")
    guard.freeze(ctx, True)
    assert "no new run: learning is frozen" in slash("/evolve") and started == ["cli"]


def test_a_background_run_gets_the_sessions_data_folder_config_backend_and_settings(tmp_path, make_config, monkeypatch):
    from graph.evolution import runs

    seen = []

    class Popen:
        def __init__(self, command, **kwargs):
            seen.append((command, kwargs))
            self.pid = 1234

    monkeypatch.setattr(runs.subprocess, "Popen", Popen)
    ctx = make(tmp_path, make_config, ScriptedChat(replies=[]))
    ctx.backend = "embedded"
    assert runs.start_background(ctx, "auto", {"generations": 2, "population": None, "lora": "off"}) == 1234
    [(command, kwargs)] = seen
    assert command[1:] == [str(ROOT / "agent.py"), "evolve", "--home", ctx.home, "--trigger", "auto", "--config",
                           str(ctx.config), "--backend", "embedded", "--generations", "2", "--lora", "off"]
    assert kwargs["stdin"] == subprocess.DEVNULL and kwargs.get("start_new_session") and kwargs["cwd"] == ctx.home
    assert (tmp_path / "home" / "evolution.log").exists()


def test_evolve_rollback_is_in_the_learning_log_like_every_rollback(tmp_path, make_config):
    from graph.actions import evolution as actions
    from graph.learning import guard

    ctx = make(tmp_path, make_config, ScriptedChat(replies=[]))
    store = ctx.store
    first = selfprompt.current(ctx)
    evolved = selfprompt.propose(ctx, first.text + "\nAnswer in one short paragraph.", "evolution", "won run 1")
    undone, back = actions.rollback(ctx, "rolled back by the user (agent.py evolve --rollback)")
    assert (undone.id, back.id) == (evolved.id, first.id)
    assert selfprompt.current(ctx).text == first.text
    [entry] = [e for e in guard.entries(store) if e["kind"] == "rollback"]
    assert f"version {evolved.id} (from evolution) rolled back" in entry["detail"]
