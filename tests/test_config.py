"""config.yaml: every setting documented, validated at start with one clear line per bad key."""

import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, agent_env
from graph.config import ConfigError, Settings, load_settings
from graph.context import Context


def leaf_keys(model, prefix=""):
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, Settings.__mro__[1]):
            yield from leaf_keys(field.annotation, f"{prefix}{name}.")
        else:
            yield prefix + name


def test_shipped_config_has_every_key_with_a_comment():
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    lines = text.splitlines()
    for key in leaf_keys(Settings):
        node = data
        for part in key.split("."):
            assert part in node, f"config.yaml lacks {key}"
            node = node[part]
        at = -1
        for part in key.split("."):  # the key's own line: each part found after its parent's
            at = next(i for i, line in enumerate(lines) if i > at and line.strip().startswith(part + ":"))
        assert lines[at - 1].strip().startswith("#"), f"{key} has no comment above it"
    assert load_settings(ROOT / "config.yaml") == Settings()  # the file states the defaults


def test_missing_file_means_defaults(tmp_path):
    assert load_settings(tmp_path / "absent.yaml") == Settings()


@pytest.mark.parametrize("settings, expected", [
    ({"llm": {"backnd": "auto"}}, "unknown key 'llm.backnd' (allowed here: backend, temperature"),
    ({"colour": 1}, "unknown key 'colour' (allowed here: llm, agent, reasoning, session, monitoring, repl, tools, memory, learning, evolution, web, mcpServers)"),
    ({"llm": {"backend": "gpt"}}, "llm.backend must be one of auto, ollama or embedded (got 'gpt')"),
    ({"llm": {"ollama": {"num_ctx": 10}}}, "llm.ollama.num_ctx: must be auto or a number of tokens from 512"),
    ({"llm": {"ollama": {"max_num_ctx": 10}}}, "llm.ollama.max_num_ctx: Input should be greater than or equal to 512"),
    ({"llm": {"temperature": "hot"}}, "llm.temperature: Input should be a valid number"),
    ({"agent": {"system_prompt": ""}}, "agent.system_prompt: String should have at least 1 character"),
    ({"tools": {"shell": {"policy": "sometimes"}}}, "tools.shell.policy must be one of ask, allowlist or auto"),
    ({"tools": {"shell": {"deny": ["("]}}}, "tools.shell.deny: not a valid regular expression: '('"),
    ({"mcpServers": {"x": {"command": "a", "url": "http://x"}}}, "mcpServers.x: give either command"),
    ({"mcpServers": {"y": {"url": "ftp://x"}}}, "mcpServers.y.url: must start with http:// or https://"),
    ({"mcpServers": {"z": {"command": "a", "bogus": 1}}},
     "unknown key 'mcpServers.z.bogus' (allowed here: command, args, env, cwd, url, headers, type, disabled)"),
])
def test_bad_values_are_named(make_config, settings, expected):
    with pytest.raises(ConfigError) as err:
        load_settings(make_config(settings))
    assert expected in str(err.value) and len(str(err.value).splitlines()) == 1


def test_broken_yaml_names_the_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("llm:\n  backend: [auto\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d"):
        load_settings(path)


def test_cli_reports_bad_config_in_one_line_without_traceback(tmp_path, make_config):
    cfg = make_config({"llm": {"backend": "gpt", "max_tokens": 1}})
    out = subprocess.run([sys.executable, str(ROOT / "agent.py"), "--config", str(cfg), "-m", "hi"],
                         capture_output=True, text=True, env=agent_env(tmp_path / "h"), timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in out.stderr
    assert "llm.backend must be one of" in lines[0] and "llm.max_tokens" in lines[1]


def test_backend_flag_overrides_config(make_config):
    ctx = Context(config=str(make_config({"llm": {"backend": "ollama"}})), backend="embedded")
    assert ctx.settings.llm.backend == "embedded"


def test_every_key_has_an_environment_variable(monkeypatch, tmp_path):
    """The naming rule: AGENT_ + the key's path in upper case, levels joined by a double underscore."""
    import json

    from graph.config import load
    from graph.environment import variable

    defaults = Settings().model_dump()
    for key in leaf_keys(Settings):
        value = defaults
        for part in key.split("."):
            value = value[part]
        monkeypatch.setenv(variable(key.split(".")), json.dumps(value) if isinstance(value, list) else str(value))
    settings, origins = load(tmp_path / "absent.yaml")
    assert settings == Settings()
    assert origins["llm.ollama.model"] == "AGENT_LLM__OLLAMA__MODEL"
    assert origins["tools.shell.deny"] == "AGENT_TOOLS__SHELL__DENY"
    assert set(origins) == set(leaf_keys(Settings))


def test_flag_beats_environment_beats_file(monkeypatch, make_config):
    cfg = make_config({"llm": {"backend": "ollama", "max_tokens": 100, "temperature": 0.5}})
    monkeypatch.setenv("AGENT_LLM__BACKEND", "auto")
    monkeypatch.setenv("agent_llm__max_tokens", "200")  # case does not matter, as on Windows
    ctx = Context(config=str(cfg), backend="embedded")
    assert (ctx.settings.llm.backend, ctx.settings.llm.max_tokens, ctx.settings.llm.temperature) == ("embedded", 200, 0.5)
    assert ctx.origins["llm.backend"] == "--backend" and ctx.origins["llm.max_tokens"] == "agent_llm__max_tokens"
    assert ctx.origins["llm.temperature"] == str(cfg)


@pytest.mark.parametrize("host, url", [
    ("gpu-box", "http://gpu-box:11434"),
    ("gpu-box:8080", "http://gpu-box:8080"),
    (":5555", "http://127.0.0.1:5555"),
    ("0.0.0.0", "http://0.0.0.0:11434"),
    ("https://ollama.example.com", "https://ollama.example.com:443"),
    ("http://10.0.0.2:11434/", "http://10.0.0.2:11434"),
    ("[::1]:9000", "http://[::1]:9000"),
])
def test_ollama_host_is_read_as_ollama_reads_it(monkeypatch, make_config, host, url):
    monkeypatch.setenv("OLLAMA_HOST", host)
    ctx = Context(config=str(make_config()))
    assert ctx.settings.llm.ollama.base_url == url and ctx.origins["llm.ollama.base_url"] == "OLLAMA_HOST"


def test_the_agent_variable_beats_ollama_host_which_beats_the_file(monkeypatch, make_config):
    cfg = make_config({"llm": {"ollama": {"base_url": "http://file-host:1"}}})
    monkeypatch.setenv("OLLAMA_HOST", "env-host")
    assert Context(config=str(cfg)).settings.llm.ollama.base_url == "http://env-host:11434"
    monkeypatch.setenv("AGENT_LLM__OLLAMA__BASE_URL", "agent-host:2")
    ctx = Context(config=str(cfg))
    assert ctx.settings.llm.ollama.base_url == "http://agent-host:2"
    assert ctx.origins["llm.ollama.base_url"] == "AGENT_LLM__OLLAMA__BASE_URL"


@pytest.mark.parametrize("name, value, expected", [
    ("AGENT_LLM__TEMPERATURE", "hot", "AGENT_LLM__TEMPERATURE: llm.temperature: Input should be a valid number"),
    ("AGENT_LLM__BACKND", "auto", "AGENT_LLM__BACKND: unknown key 'llm.backnd' (allowed here: backend,"),
    ("AGENT_TOOLS__SHELL__ALLOW", "[git", "environment: a list or mapping in AGENT_TOOLS__… is not valid JSON"),
    ("OLLAMA_HOST", "gpu:port", "environment: OLLAMA_HOST must be a host, host:port or URL (got 'gpu:port')"),
    ("AGENT_LLM__OLLAMA__NUM_CTX", "10", "AGENT_LLM__OLLAMA__NUM_CTX: llm.ollama.num_ctx: must be auto or a number"),
])
def test_bad_environment_values_are_named(monkeypatch, tmp_path, name, value, expected):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path / "absent.yaml")
    assert expected in str(err.value) and len(str(err.value).splitlines()) == 1


def test_environment_in_the_real_cli(tmp_path, make_config):
    """A cron-like run: settings only from the environment; status says where each came from;
    a bad variable is one line and exit code 2."""
    import json

    home = tmp_path / "h"
    env = agent_env(home, OLLAMA_HOST="127.0.0.1:9", AGENT_LLM__BACKEND="ollama", AGENT_LLM__MAX_TOKENS="64")
    out = subprocess.run([sys.executable, str(ROOT / "agent.py"), "status", "--json", "--backend", "embedded",
                          "--config", str(make_config({"llm": {"max_tokens": 32}}))],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)["settings"]
    assert shown["llm.ollama.base_url"] == {"value": "http://127.0.0.1:9", "from": "OLLAMA_HOST"}
    assert shown["llm.backend"] == {"value": "embedded", "from": "--backend"}
    assert shown["llm.max_tokens"] == {"value": 64, "from": "AGENT_LLM__MAX_TOKENS"}
    bad = subprocess.run([sys.executable, str(ROOT / "agent.py"), "-m", "hi"], capture_output=True, text=True,
                         env=agent_env(home, AGENT_REASONING__MODE="sometimes"), timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == ("error: AGENT_REASONING__MODE: reasoning.mode must be one of auto, on or off "
                                  "(got 'sometimes')")
