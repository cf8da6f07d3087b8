"""config.yaml: every setting documented, validated at start with one clear line per bad key."""

import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, agent_env
from graph.context import ConfigError, Context, Settings, load_settings


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
    ({"colour": 1}, "unknown key 'colour' (allowed here: llm, agent, reasoning, session, monitoring, repl, tools, memory, learning, evolution, mcpServers)"),
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
