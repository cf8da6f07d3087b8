"""Runtime settings: the validated config.yaml and the data folder, bundled as `Context`.

Owns: the config schema (every key, its type and allowed values), loading and
validating config.yaml with one clear line per bad key, locating the data folder
(`--home` > `AGENT_HOME` > `data/` beside agent.py), and the `Context` dataclass
that LangGraph hands to every node as `runtime.context`.
Does not own: building models (llm.py) or reading/writing data (store.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "config.yaml"
THREAD_ID = "main"  # the one endless session


class ConfigError(Exception):
    """A bad config file or value; the message is one line per problem, shown as is."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class OllamaSettings(_Strict):
    base_url: str = "http://127.0.0.1:11434"
    model: str = "qwen2:7b-instruct"
    num_ctx: int | str = "auto"
    max_num_ctx: int = Field(32768, ge=512, le=262144)

    @field_validator("num_ctx")
    @classmethod
    def _num_ctx(cls, value: int | str) -> int | str:
        if value != "auto" and not (isinstance(value, int) and 512 <= value <= 262144):
            raise ValueError("must be auto or a number of tokens from 512 to 262144")
        return value
    keep_alive: str | int = "5m"
    connect_timeout_s: float = Field(2.0, gt=0, le=60)
    read_timeout_s: float = Field(120.0, gt=0, le=3600)


class EmbeddedSettings(_Strict):
    model_path: str = ""
    n_ctx: int = Field(4096, ge=512, le=32768)
    n_threads: int = Field(0, ge=0, le=256)


class LLMSettings(_Strict):
    backend: Literal["auto", "ollama", "embedded"] = "auto"
    temperature: float = Field(0.3, ge=0, le=2)
    max_tokens: int = Field(512, ge=16, le=32768)
    ollama: OllamaSettings = OllamaSettings()
    embedded: EmbeddedSettings = EmbeddedSettings()


class AgentSettings(_Strict):
    system_prompt: str = Field(
        "You are a helpful assistant running locally on the user's computer.\n"
        "Answer clearly and concisely, in the language the user writes in.\n", min_length=1
    )
    max_tool_rounds: int = Field(4, ge=0, le=50)


class MonitoringSettings(_Strict):
    prometheus_port: int = Field(0, ge=0, le=65535)
    refresh_s: float = Field(1.0, ge=0.2, le=60)
    log_max_mb: float = Field(5, gt=0, le=1000)
    log_backups: int = Field(3, ge=1, le=100)


class ReasoningSettings(_Strict):
    mode: Literal["auto", "on", "off"] = "auto"
    max_tokens: int = Field(768, ge=32, le=32768)


class SessionSettings(_Strict):
    compact_at: float = Field(0.6, ge=0.2, le=0.9)
    keep_turns: int = Field(3, ge=1, le=50)
    summary_tokens: int = Field(300, ge=50, le=4000)
    keep_checkpoints: int = Field(3, ge=1, le=1000)


class ReplSettings(_Strict):
    history_file: str = "repl_history"


class Settings(_Strict):
    llm: LLMSettings = LLMSettings()
    agent: AgentSettings = AgentSettings()
    reasoning: ReasoningSettings = ReasoningSettings()
    session: SessionSettings = SessionSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    repl: ReplSettings = ReplSettings()


def _explain(err: dict, source: str) -> str:
    key = ".".join(str(p) for p in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        model = Settings
        for part in err["loc"][:-1]:
            model = model.model_fields[str(part)].annotation
        allowed = ", ".join(model.model_fields)
        return f"{source}: unknown key '{key}' (allowed here: {allowed})"
    if kind == "literal_error":
        allowed = err["ctx"]["expected"].replace("'", "")
        return f"{source}: {key} must be one of {allowed} (got {err['input']!r})"
    return f"{source}: {key}: {err['msg'].removeprefix('Value error, ')} (got {err['input']!r})"


def load_settings(path: Path, backend: str = "", think: str = "", must_exist: bool = False) -> Settings:
    """Read and validate a config file; raise ConfigError with one line per problem.
    A missing file means the defaults, unless `must_exist` (the user named it)."""
    if must_exist and not path.exists():
        raise ConfigError(f"{path}: no such config file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise ConfigError(f"{path}: not valid YAML{line}: {getattr(exc, 'problem', exc)}")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must be a mapping of settings, got {type(raw).__name__}")
    try:
        settings = Settings.model_validate(raw)
        if backend:
            settings.llm.backend = backend
        if think:
            settings.reasoning.mode = think
    except ValidationError as exc:
        raise ConfigError("\n".join(_explain(e, str(path)) for e in exc.errors()))
    return settings


def default_home() -> Path:
    return Path(os.environ.get("AGENT_HOME") or ROOT / "data").expanduser().resolve()


@dataclass
class Context:
    """What every node needs to know about this run. All fields are optional so
    LangGraph Studio (which may pass no context) gets the same defaults as the CLI."""

    home: str = ""
    config: str = ""
    backend: str = ""
    think: str = ""  # auto | on | off: overrides reasoning.mode (--think, /think)

    def __post_init__(self) -> None:
        self._named_config = bool(self.config)
        self.home = str(Path(self.home).expanduser().resolve() if self.home else default_home())
        self.config = str(Path(self.config).expanduser().resolve() if self.config else DEFAULT_CONFIG)

    @cached_property
    def settings(self) -> Settings:
        return load_settings(Path(self.config), self.backend, self.think, must_exist=self._named_config)
