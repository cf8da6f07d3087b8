"""Shared fixtures: every test gets its own data folder and config file; nothing touches data/."""

import os
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
NO_GPU = Path(__file__).resolve().parent / "nogpu"  # a pynvml that finds no driver, for agent subprocesses


def pytest_configure(config):
    # `agent.py -m` attaches piped stdin to the message (`git diff | agent.py -m ...`) and reads it
    # to its end: agent subprocesses get an empty stdin, whatever stdin the runner gives pytest
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    config.addinivalue_line("markers", "policy: let the learned strategy policy sample (Thompson sampling) "
                                       "instead of answering with the default strategy")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch, request):
    from graph.learning import strategy

    for name in filter(_setting, list(os.environ)):  # the developer's own settings stay out of the tests
        monkeypatch.delenv(name)
    monkeypatch.setenv("AGENT_HOME", str(tmp_path / "home"))
    no_gpu(monkeypatch)
    if request.node.get_closest_marker("policy") is None:  # routing tests need the same prompt layout every run
        monkeypatch.setattr(strategy, "choose", lambda store, where, rng=None, barred=(): dict(strategy.DEFAULT))
    yield
    _release_files()  # each test's MCP servers (and browser) end with it


def no_gpu(monkeypatch) -> None:
    """What the agent shows must not depend on the test machine's GPU: NVML finds no driver,
    here and in subprocesses (tests that need a GPU stub one over this)."""
    import pynvml

    from graph import monitor

    def no_driver(*args):
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", no_driver)
    monkeypatch.setattr(monitor, "_nvml_ready", None)  # gpu() remembers the first init
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(NO_GPU), os.environ.get("PYTHONPATH")])))


def _release_files() -> None:
    """Close what the test's data folder kept open (database connections, the turn log, the
    memory index): hundreds of tests in one process would otherwise pass 1024 open files,
    where pexpect's select() fails."""
    import gc
    import logging

    from graph import context

    context.close_all()  # every session's services: its MCP servers (and browser), indexing thread, database
    for name, log in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith("agent.turns.") and isinstance(log, logging.Logger):
            for handler in log.handlers[:]:
                handler.close()
                log.removeHandler(handler)
    gc.collect()  # sessions' own SQLite connections close when they are collected


def settings_for_tests(settings: dict | None = None) -> dict:
    """A test's config settings with the tests' defaults where it sets nothing else: the built-in
    browser off (it starts a Node.js process per data folder), the learned strategy policy off (its
    sampling would vary the prompt and the temperature between runs of an agent subprocess: a real
    model's answer with them), and the automatic evolution run off (a background process every N turns)."""
    settings = dict(settings or {})
    settings["learning"] = {"policy": False, **settings.get("learning", {})}
    settings["evolution"] = {"every_turns": 0, **settings.get("evolution", {})}
    tools = settings["tools"] = dict(settings.get("tools", {}))
    tools["browser"] = {"enabled": False, **tools.get("browser", {})}
    return settings


@pytest.fixture
def make_config(tmp_path):
    """Write a config.yaml from a nested dict, with `settings_for_tests`' defaults; returns its path."""
    def make(settings: dict | None = None, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(settings_for_tests(settings)), encoding="utf-8")
        return path
    return make


def _setting(name: str) -> bool:
    """Whether an environment variable would change the agent's settings (graph/environment.py):
    not AGENT_HOME, nor the variables the tests use to steer the model process (AGENT_TEST_CRASH_FILE)."""
    from graph.config import Settings
    from graph.environment import DELIMITER, PREFIX

    section = name.upper().removeprefix(PREFIX).split(DELIMITER)[0].lower()
    return name == "OLLAMA_HOST" or (name.upper().startswith(PREFIX) and section in Settings.model_fields)


def agent_env(home: Path, **variables: str) -> dict:
    """The environment of an agent subprocess: this one's without settings, the data folder,
    and `variables` on top."""
    env = {name: value for name, value in os.environ.items() if not _setting(name)}
    return dict(env, AGENT_HOME=str(home), PYTHONUNBUFFERED="1", COLUMNS="200", **variables)
