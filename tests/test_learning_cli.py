"""The self-learning commands end to end: `reward`, `prompt`, `data` and `learn` on a data
folder whose turns were taken with the scripted model (real graph, real reward node, real
SQLite); the REPL's /good, /bad, /rate, /reward, /prompt, /learn and /data; the learning row
of `status` and the monitor's reward and prompt version. Japanese text goes through add,
list and export unescaped. `agent()` runs a real subprocess (exit codes, stderr, encoding);
`cli()` calls agent.main() in this process, the same code without the 1 s interpreter start,
for the many checks of what the commands show."""

import contextlib
import io
import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
from rich.console import Console

from conftest import ROOT, agent_env
from fakes import ScriptedChat, install
from graph import monitor
from graph.actions import status as status_actions
from graph.cli import slash as commands, status as status_cli
from graph.context import Context
from graph.learning import reward, selfprompt
from graph.session import Session

AGENT = str(ROOT / "agent.py")
TURNS = [  # (the user's message, the scripted answer)
    ("What is the capital of France?", "Paris is the capital of France."),
    ("Thanks, that is perfect!", "You're welcome!"),  # praise: turn 1 becomes a desirable example
    ("Is Lyon the capital of France?", "Yes, Lyon is the capital."),
    ("No, that's wrong.", "Sorry, Paris is the capital."),  # correction: turn 3 an undesirable one
]


@pytest.fixture
def seeded(tmp_path, make_config, monkeypatch):
    """A session with four answered turns: three settled rewards, the last one waiting."""
    monkeypatch.setenv("COLUMNS", "200")  # cli()'s tables, as wide as a subprocess's
    cfg = make_config({"memory": {"enabled": False}, "learning": {"policy": True, "rewrite_every": 0}})
    ctx = Context(home=str(tmp_path / "home"), config=str(cfg), cwd=str(tmp_path))
    install(ctx, ScriptedChat(replies=[answer for _, answer in TURNS]))
    session = Session(ctx)
    for text, _ in TURNS:
        assert "done" in dict(session.turn(text))
    return session, cfg


def agent(session_or_home, cfg, *args):
    home = session_or_home.ctx.home if isinstance(session_or_home, Session) else session_or_home
    return subprocess.run([sys.executable, AGENT, *args, "--config", str(cfg)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env=agent_env(home), timeout=60, encoding="utf-8")


def cli(session_or_home, cfg, *args):
    """agent.main() in this process, with what it prints captured (like a subprocess's)."""
    import agent as entry

    home = session_or_home.ctx.home if isinstance(session_or_home, Session) else session_or_home
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = entry.main([*args, "--home", str(home), "--config", str(cfg)])
        except SystemExit as exc:  # argparse
            code = exc.code
    return SimpleNamespace(args=args, returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def ok(out) -> str:
    assert out.returncode == 0, (out.args, out.stdout, out.stderr)
    return out.stdout


def refused(out, code: int, text: str) -> None:
    assert out.returncode == code, (out.args, out.stdout, out.stderr)
    assert text in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_reward_listing_explanation_and_rating(seeded):
    session, cfg = seeded
    data = json.loads(ok(agent(session, cfg, "reward", "--json")))
    rows = {r["turn"]: r for r in data["rewards"]}
    assert sorted(rows) == [1, 2, 3, 4]
    assert rows[1]["components"] == {"praise": 0.6} and rows[1]["reward"] == 0.6
    assert rows[3]["components"] == {"correction": -0.6} and rows[3]["settled"]
    assert rows[4]["settled"] is None  # its next action is not known yet
    assert rows[1]["prompt_version"] == 1 and rows[1]["bucket"] == "en-simple"
    assert rows[1]["arms"] == {"style": "default", "think": "auto", "temperature": "config"}
    assert data["curve"] == [{"first": 1, "last": 10, "mean": 0.0, "n": 3}]
    assert data["policy"]["best"]["en-simple"]["style"] in ("default", "concise", "detailed")
    assert {(a["factor"], a["arm"], a["n"]) for a in data["policy"]["arms"]} >= {("style", "default", 3)}

    table = ok(cli(session, cfg, "reward", "--last", "2"))
    assert "correction -0.60" in table and "waiting" in table and "praise" not in table
    assert "mean reward per 10 turns" in table and "learned policy" in table and "★" in table

    why = ok(cli(session, cfg, "reward", "--turn", "1"))
    assert "turn 1 · reward +0.60" in why and "thanked or praised" in why
    assert "prompt version 1" in why and "en-simple" in why
    explained = json.loads(ok(cli(session, cfg, "reward", "--turn", "3", "--json")))
    assert explained["components"] == {"correction": -0.6} and "wrong" in explained["meanings"]["correction"]
    refused(agent(session, cfg, "reward", "--turn", "99"), 1, "error: turn 99 has no reward")

    rated = ok(cli(session, cfg, "reward", "--rate", "5"))  # the latest answer
    assert "turn 4's answer: reward +1.00" in rated
    assert reward.get(session.store, 4).components == {"rating": 1.0}
    bad = json.loads(ok(cli(session, cfg, "reward", "--bad", "--turn", "1", "--json")))
    assert bad["reward"] == -1.0 and bad["components"] == {"praise": 0.6, "bad": -1.0}
    assert "explicit rating (bad) decides alone" in ok(cli(session, cfg, "reward", "--turn", "1"))
    refused(agent(session, cfg, "reward", "--good", "--bad"), 2, "not allowed with")


def test_prompt_show_history_diff_set_rollback(seeded, tmp_path):
    session, cfg = seeded
    first = session.ctx.settings.agent.system_prompt.strip()
    shown = ok(cli(session, cfg, "prompt"))
    assert "prompt version 1 · active (serving now) · by config" in shown and first.splitlines()[0] in shown
    assert "first prompt version: nothing to compare" in ok(cli(session, cfg, "prompt", "diff"))

    refused(agent(session, cfg, "prompt", "set", "--text", "too short"), 1, "error: prompt not changed: the prompt is too short")
    refused(cli(session, cfg, "prompt", "set", "--text", "You are a pirate who answers everything."), 1,
            "drops the prompt's first line")
    refused(cli(session, cfg, "prompt", "set"), 2, "exactly one of VERSION, --text TEXT or --file FILE")
    refused(cli(session, cfg, "prompt", "set", "--file", str(tmp_path / "missing.txt")), 1, "cannot read it")

    rule = "常に日本語で短く答えてください。"
    new = tmp_path / "prompt.txt"
    new.write_text(f"{first}\n\nRules learned from the user:\n- {rule}\n", encoding="utf-8")
    out = ok(agent(session, cfg, "prompt", "set", "--file", str(new), "--why", "the user prefers Japanese"))
    assert "prompt version 2 is active now" in out
    diff = ok(cli(session, cfg, "prompt", "diff"))
    assert "--- version 1" in diff and "+++ version 2" in diff and f"+- {rule}" in diff
    history = json.loads(ok(agent(session, cfg, "prompt", "history", "--json")))
    assert [(v["id"], v["status"], v["author"], v["serving"]) for v in history] == [
        (1, "retired", "config", False), (2, "active", "user", True)]
    assert history[1]["rationale"] == "the user prefers Japanese" and history[0]["stats"] == {"turns": 3, "mean": 0.0}
    table = ok(cli(session, cfg, "prompt", "history"))
    assert "▶ 2" in table and "the user prefers Japanese" in table and "+0.00 (3)" in table

    assert "version 1 is serving again" in ok(cli(session, cfg, "prompt", "rollback", "--why", "too terse"))
    back = json.loads(ok(cli(session, cfg, "prompt", "history", "--json")))
    assert [(v["status"], v["outcome"]) for v in back] == [("active", None), ("rolled_back", "too terse")]
    again = json.loads(ok(cli(session, cfg, "prompt", "set", "2", "--json")))  # its text serves again
    assert again["id"] == 3 and again["author"] == "user" and again["text"].endswith(rule)
    assert json.loads(ok(cli(session, cfg, "prompt", "show", "2", "--json")))["status"] == "rolled_back"
    assert "-+" not in ok(cli(session, cfg, "prompt", "diff", "3", "1"))
    refused(cli(session, cfg, "prompt", "show", "9"), 1, "error: no prompt version 9")
    ok(cli(session, cfg, "prompt", "rollback"))
    refused(cli(session, cfg, "prompt", "rollback"), 1, "no earlier prompt version")

    kinds = [e["kind"] for e in json.loads(ok(cli(session, cfg, "learn", "--json")))["log"]]
    assert kinds.count("prompt") == 2 and kinds.count("rollback") == 2


def test_data_add_list_show_rm_and_export(seeded, tmp_path):
    session, cfg = seeded
    auto = json.loads(ok(cli(session, cfg, "data", "--json")))
    assert [(e["turn"], e["label"], e["source"]) for e in auto] == [(3, "undesirable", "auto"), (1, "desirable", "auto")]

    def add(*args):
        return json.loads(ok(agent(session, cfg, "data", "add", *args, "--json")))

    tokyo = add("--user", "日本の首都は？", "--answer", "東京です。", "--label", "desirable", "--why", "正しい答え")
    assert tokyo["messages"] == [{"role": "user", "content": "日本の首都は？"},
                                 {"role": "assistant", "content": "東京です。"}]
    assert tokyo["source"] == "user" and tokyo["why"] == "正しい答え" and tokyo["turn"] is None
    add("--user", "日本の首都は？", "--answer", "大阪です。", "--label", "undesirable")
    turn2 = add("--turn", "2", "--label", "undesirable")
    assert [m["role"] for m in turn2["messages"]] == ["system", "user", "assistant"]  # with the prompt that answered
    assert turn2["messages"][1:] == [{"role": "user", "content": "Thanks, that is perfect!"},
                                     {"role": "assistant", "content": "You're welcome!"}]
    refused(agent(session, cfg, "data", "add", "--turn", "99", "--label", "desirable"), 1, "turn 99")
    refused(cli(session, cfg, "data", "add", "--user", "hi", "--label", "desirable"), 2, "--answer")
    refused(cli(session, cfg, "data", "add", "--turn", "1", "--user", "x", "--answer", "y", "--label", "bad"), 2,
            "invalid choice")

    mine = json.loads(ok(cli(session, cfg, "data", "list", "--source", "user", "--json")))
    assert len(mine) == 3 and {e["source"] for e in mine} == {"user"}
    table = ok(cli(session, cfg, "data", "list", "--label", "desirable"))
    assert "日本の首都は？ → 東京です。" in table and "大阪" not in table
    assert "5 tuning examples · desirable: " in table and "undesirable: " in table
    assert len(json.loads(ok(cli(session, cfg, "data", "list", "--last", "2", "--json")))) == 2
    shown = ok(cli(session, cfg, "data", "show", str(tokyo["id"])))
    assert f"example #{tokyo['id']} · desirable" in shown and "user: 日本の首都は？" in shown
    assert "assistant: 東京です。" in shown and "why: 正しい答え" in shown

    sft = [json.loads(line) for line in ok(cli(session, cfg, "data", "export", "--format", "sft")).splitlines()]
    assert sft and all(set(r) == {"messages"} for r in sft)
    assert {"role": "assistant", "content": "東京です。"} in [r["messages"][-1] for r in sft]
    assert {"role": "assistant", "content": "大阪です。"} not in [r["messages"][-1] for r in sft]  # sft: desirable only
    kto_text = ok(agent(session, cfg, "data", "export", "--format", "kto"))
    assert "東京です。" in kto_text and "\\u" not in kto_text  # Japanese as is (ensure_ascii=False)
    kto = [json.loads(line) for line in kto_text.splitlines()]
    assert len(kto) == 5 and all(set(r) == {"prompt", "completion", "label"} for r in kto)
    assert sorted(r["label"] for r in kto) == [False, False, False, True, True]
    dpo = [json.loads(line) for line in ok(cli(session, cfg, "data", "export", "--format", "dpo")).splitlines()]
    assert all(set(r) == {"prompt", "chosen", "rejected"} for r in dpo)
    assert {"prompt": [{"role": "user", "content": "日本の首都は？"}], "chosen": [{"role": "assistant", "content": "東京です。"}],
            "rejected": [{"role": "assistant", "content": "大阪です。"}]} in dpo

    out = tmp_path / "kto.jsonl"
    written = agent(session, cfg, "data", "export", "--format", "kto", "--out", str(out))
    assert written.returncode == 0 and written.stdout == "" and f"wrote 5 kto records to {out}" in written.stderr
    assert out.read_text(encoding="utf-8") == kto_text
    splits = [len(ok(cli(session, cfg, "data", "export", "--format", "kto", "--split", s)).splitlines())
              for s in ("train", "eval")]
    assert sum(splits) == 5

    assert f"removed example #{tokyo['id']}" in ok(cli(session, cfg, "data", "rm", str(tokyo["id"])))
    refused(agent(session, cfg, "data", "rm", str(tokyo["id"])), 1, f"no example {tokyo['id']}")
    refused(cli(session, cfg, "data", "show", str(tokyo["id"])), 1, f"no example {tokyo['id']}")
    kinds = [e["detail"] for e in json.loads(ok(cli(session, cfg, "learn", "--json", "--last", "50")))["log"]]
    assert any("added by the user" in k for k in kinds) and any("deleted by the user" in k for k in kinds)


def test_learn_off_and_on(seeded):
    session, cfg = seeded
    assert json.loads(ok(cli(session, cfg, "learn", "--json")))["state"] == "on"
    assert "self-learning is frozen" in ok(agent(session, cfg, "learn", "off"))
    status = json.loads(ok(agent(session, cfg, "learn", "--json")))
    assert status["state"] == "frozen" and status["log"][-1]["kind"] == "freeze"
    assert status["prompt_version"] == "1" and status["examples"] == 2 and status["reward_avg"] == 0.0
    shown = ok(cli(session, cfg, "learn"))
    assert "learning: frozen" in shown and "self-learning turned off by the user" in shown
    assert "nothing learned from it" in ok(cli(session, cfg, "reward", "--good"))  # recorded while frozen
    info = status_actions.status(session.ctx, session.store, None)
    assert info["learning"]["state"] == "frozen"
    console = Console(record=True, width=200)
    console.print(status_cli.status_table(info))
    assert "learning     frozen" in console.export_text()
    assert "self-learning is on again" in ok(cli(session, cfg, "learn", "on"))
    assert json.loads(ok(cli(session, cfg, "learn", "--json")))["state"] == "on"
    refused(cli(session, cfg, "learn", "maybe"), 2, "invalid choice")


def test_slash_commands(seeded):
    session, _ = seeded
    console = Console(record=True, width=200)

    def slash(line: str) -> str:
        assert commands.command(session, line, console)
        return console.export_text()

    shown = slash("/help")
    assert all(f"/{name}" in shown for name in ("good", "bad", "rate N", "reward [N]", "prompt [", "learn [on|off]",
                                                "data"))
    assert "turn 4's answer: reward +1.00 (good +1.00)" in slash("/good")
    assert "turn 4's answer: reward -0.50 (rating -0.50)" in slash("/rate 2")
    assert reward.get(session.store, 4).components == {"rating": -0.5}
    assert "usage: /rate N (1 to 5)" in slash("/rate 9")
    assert "reward -1.00 (bad -1.00)" in slash("/bad")
    listed = slash("/reward 2")
    assert "correction -0.60" in listed and "bad -1.00" in listed and "praise" not in listed
    assert "mean reward per 10 turns" in listed
    assert "usage: /reward [N]" in slash("/reward many")
    assert "prompt version 1 · active (serving now)" in slash("/prompt")
    assert "▶ 1" in slash("/prompt history")
    assert "nothing to compare" in slash("/prompt diff")
    assert "no earlier prompt version" in slash("/prompt rollback")
    selfprompt.propose(session.ctx, selfprompt.with_rule(selfprompt.current(session.ctx).text,
                                                         "Answer in one short sentence."), "agent", "test")
    assert "+- Answer in one short sentence." in slash("/prompt diff")
    assert "rolled back prompt version 2; version 1 is serving again" in slash("/prompt rollback")
    assert "self-learning is frozen" in slash("/learn off")
    assert "learning: frozen" in slash("/learn")
    assert "self-learning is on again" in slash("/learn on")
    assert "usage: /learn [on|off]" in slash("/learn maybe")
    data = slash("/data")
    assert "What is the capital of France? → Paris is the capital of France." in data
    assert "tuning examples · desirable: " in data


def test_rating_with_no_answer_yet(tmp_path, make_config):
    cfg = make_config({"memory": {"enabled": False}})
    refused(agent(tmp_path / "home", cfg, "reward", "--good"), 1, "error: no answer to rate yet")
    listing = ok(cli(tmp_path / "home", cfg, "reward"))
    assert "no rewards yet" in listing and "no settled rewards yet" in listing
    assert "0 tuning examples" in ok(cli(tmp_path / "home", cfg, "data"))


def test_monitor_snapshot_has_reward_and_prompt_version(seeded, tmp_path, make_config):
    session, _ = seeded
    agent_info = monitor.snapshot(session.ctx, session.store, None, cpu_interval=0.01)["agent"]
    assert agent_info["reward_recent"] == [0.6, 0.0, -0.6] and agent_info["reward_avg"] == 0.0
    assert agent_info["prompt_version"] == "1"
    selfprompt.propose(session.ctx, selfprompt.with_rule(selfprompt.current(session.ctx).text,
                                                         "Answer in one short sentence."), "agent", "test")
    assert monitor.snapshot(session.ctx, session.store, None)["agent"]["prompt_version"] == "2 (probation)"

    fresh = Context(home=str(tmp_path / "fresh"), config=str(make_config()))
    store = Session(fresh).store
    snap = monitor.snapshot(fresh, store, None)["agent"]
    assert snap["prompt_version"] is None and snap["reward_avg"] is None and snap["reward_recent"] == []
    assert store.read("SELECT COUNT(*) FROM prompts") == [(0,)]  # reading made no version
