"""The settings: the config schema and loading config.yaml with every override.

Owns: the config schema (every key, its type and allowed values), loading and validating the
settings with one clear line per bad key, from four layers: a flag (`--backend`, `--think`) >
the environment (environment.py) > config.yaml > the default, and where each set key came from
(shown by `status`).
Does not own: reading the environment (environment.py), the runtime context that carries the
settings to every node and the data folder (context.py), building models (models/llm.py) or
reading/writing data (store.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "config.yaml"


class ConfigError(Exception):
    """A bad config file or value; the message is one line per problem, shown as is."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class OllamaSettings(_Strict):
    base_url: str = "http://127.0.0.1:11434"
    model: str = "qwen2:7b-instruct"
    num_ctx: int | str = "auto"
    max_num_ctx: int = Field(32768, ge=512, le=262144)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        from graph.environment import ollama_url

        try:
            return ollama_url(value)
        except ValueError:
            raise ValueError("must be a host, host:port or URL, as in OLLAMA_HOST") from None

    @field_validator("num_ctx")
    @classmethod
    def _num_ctx(cls, value: int | str) -> int | str:
        if isinstance(value, str) and value.isascii() and value.isdigit():  # from the environment
            value = int(value)
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
    extra_buffers: Literal["auto", "on", "off"] = "auto"
    history_turns: int = Field(1, ge=0, le=100)


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


class WebSettings(_Strict):
    timeout_s: float = Field(8.0, gt=0, le=120)
    max_results: int = Field(5, ge=1, le=25)
    max_chars: int = Field(12000, ge=500, le=500000)


# Commands that never run, whatever the policy (regular expressions, searched in the command).
DEFAULT_DENY = [
    r"\brm\s+(-[\w-]+\s+)*(/|~|\$HOME)/?\*?(\s|$)",  # rm -rf / (or ~, $HOME)
    r"\bmkfs(\.\w+)?\b",
    r"\bdd\b.*\bof=/dev/",
    r">\s*/dev/(sd|nvme|hd|mmcblk)",
    r":\(\)\s*\{.*\};\s*:",  # fork bomb
    r"\b(shutdown|reboot|halt|poweroff)\b",
    r"\bchmod\s+(-\w+\s+)*[0-7]*\s+/(\s|$)",
]


class ShellSettings(_Strict):
    policy: Literal["ask", "allowlist", "auto"] = "ask"
    allow: list[str] = []
    deny: list[str] = DEFAULT_DENY
    timeout_s: float = Field(30.0, gt=0, le=3600)
    max_output_chars: int = Field(8000, ge=200, le=1000000)

    @field_validator("deny")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        import re

        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {pattern!r} ({exc})") from None
        return value


class FilesSettings(_Strict):
    roots: list[str] = []
    max_read_chars: int = Field(20000, ge=200, le=1000000)
    undo_keep: int = Field(50, ge=1, le=10000)


class McpSettings(_Strict):
    start_timeout_s: float = Field(30.0, gt=0, le=600)
    call_timeout_s: float = Field(60.0, gt=0, le=3600)


class BrowserSettings(_Strict):
    enabled: bool = True
    executable: str = ""
    headless: bool = True
    tools: list[str] = ["browser_navigate", "browser_navigate_back", "browser_snapshot", "browser_click",
                        "browser_type", "browser_press_key", "browser_select_option", "browser_fill_form",
                        "browser_wait_for", "browser_tabs", "browser_close"]


class MadeToolSettings(_Strict):
    timeout_s: float = Field(10.0, gt=0, le=600)
    imports: list[str] = ["math", "cmath", "statistics", "decimal", "fractions", "random", "re", "json",
                          "datetime", "time", "calendar", "zoneinfo", "itertools", "functools", "collections",
                          "string", "textwrap", "unicodedata", "hashlib", "base64", "binascii", "uuid",
                          "urllib.parse", "html", "difflib", "bisect", "heapq", "operator", "typing",
                          "dataclasses", "enum"]


class DelegateSettings(_Strict):
    max_rounds: int = Field(3, ge=1, le=20)


class ToolsSettings(_Strict):
    web: WebSettings = WebSettings()
    shell: ShellSettings = ShellSettings()
    files: FilesSettings = FilesSettings()
    mcp: McpSettings = McpSettings()
    browser: BrowserSettings = BrowserSettings()
    made: MadeToolSettings = MadeToolSettings()
    delegate: DelegateSettings = DelegateSettings()


class McpServer(_Strict):
    """One entry of `mcpServers`, in the shape Claude Desktop, Cursor and VS Code use."""

    command: str = ""
    args: list[str] = []
    env: dict[str, str] = {}
    cwd: str = ""
    url: str = ""
    headers: dict[str, str] = {}
    type: Literal["", "stdio", "http", "streamable_http", "streamable-http", "sse"] = ""
    disabled: bool = False

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:  # ${VAR} is expanded when the server starts (tools/mcp.py)
        if value and not value.startswith(("http://", "https://", "${")):
            raise ValueError("must start with http:// or https://")
        return value

    def model_post_init(self, _context) -> None:
        if bool(self.command) == bool(self.url):
            raise ValueError("give either command (a server started by the agent) or url (a running server)")


class MemorySettings(_Strict):
    enabled: bool = True
    embedding_model: str = ""
    recall_k: int = Field(5, ge=0, le=50)
    recall_tokens: int = Field(300, ge=0, le=8000)
    # "auto" = the value calibrated for the embedding model (vectors.thresholds)
    min_similarity: float | Literal["auto"] = "auto"
    duplicate_similarity: float | Literal["auto"] = "auto"
    supersede_similarity: float | Literal["auto"] = "auto"
    half_life_days: float = Field(30.0, gt=0, le=3650)
    consolidate_every: int = Field(50, ge=0, le=100000)

    @field_validator("min_similarity", "duplicate_similarity", "supersede_similarity", mode="before")
    @classmethod
    def _similarity(cls, value, info):
        if value == "auto":
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = -1.0
        low = 0 if info.field_name == "min_similarity" else 0.01  # 0 would merge or replace everything
        if not low <= number <= 1:
            raise ValueError(f'must be a cosine similarity from {low} to 1, or "auto" (calibrated for the model)')
        return number


class LearningSettings(_Strict):
    enabled: bool = True
    policy: bool = True
    feedback: bool = True
    silence_minutes: float = Field(30.0, ge=0, le=100000)
    rewrite_every: int = Field(20, ge=0, le=100000)
    self_rewrite: Literal["auto", "on", "off"] = "auto"
    reward_window: int = Field(10, ge=2, le=1000)
    reward_drop: float = Field(0.2, ge=0, le=2)
    probation_turns: int = Field(10, ge=1, le=1000)
    rollback_margin: float = Field(0.1, ge=0, le=2)
    prompt_max_chars: int = Field(4000, ge=100, le=100000)
    rule_max_chars: int = Field(200, ge=20, le=2000)
    max_rules: int = Field(20, ge=1, le=200)
    good_reward: float = Field(0.5, ge=-1, le=1)
    bad_reward: float = Field(-0.5, ge=-1, le=1)
    eval_share: float = Field(0.2, ge=0, le=0.9)


class EvolutionSettings(_Strict):
    population: int = Field(8, ge=2, le=64)
    generations: int = Field(3, ge=1, le=100)
    budget_minutes: float = Field(5.0, gt=0, le=1440)
    eval_cases: int = Field(16, ge=1, le=200)
    answer_tokens: int = Field(160, ge=16, le=4096)
    promote_margin: float = Field(0.05, ge=0, le=1)
    every_turns: int = Field(100, ge=0, le=100000)
    lora: Literal["auto", "on", "off"] = "auto"
    lora_min_examples: int = Field(8, ge=2, le=100000)
    lora_steps: int = Field(20, ge=1, le=100000)
    lora_iterations: int = Field(4, ge=1, le=1000)


class ServerSettings(_Strict):
    """`agent.py serve`: the HTTP/WebSocket API (graph/web/)."""

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=1, le=65535)
    auth: bool = True
    cors_origins: list[str] = []
    max_body_kb: int = Field(256, ge=1, le=102400)
    approval_timeout_s: float = Field(600.0, gt=0, le=86400)


class Settings(_Strict):
    llm: LLMSettings = LLMSettings()
    agent: AgentSettings = AgentSettings()
    reasoning: ReasoningSettings = ReasoningSettings()
    session: SessionSettings = SessionSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    repl: ReplSettings = ReplSettings()
    tools: ToolsSettings = ToolsSettings()
    memory: MemorySettings = MemorySettings()
    learning: LearningSettings = LearningSettings()
    evolution: EvolutionSettings = EvolutionSettings()
    web: ServerSettings = ServerSettings()
    mcpServers: dict[str, McpServer] = {}  # noqa: N815 - the common mcpServers JSON key, pasted as is


def _explain(err: dict, origins: dict[str, str]) -> str:
    key = ".".join(str(p) for p in err["loc"])
    source = _origin(key, origins)
    kind = err["type"]
    if kind == "extra_forbidden":
        model, parts = Settings, list(err["loc"][:-1])
        while parts:
            model = model.model_fields[str(parts.pop(0))].annotation
            if get_origin(model) is dict:  # mcpServers.NAME: skip the entry's name
                model = get_args(model)[1]
                parts = parts[1:]
        allowed = ", ".join(model.model_fields)
        return f"{source}: unknown key '{key}' (allowed here: {allowed})"
    if kind == "literal_error":
        allowed = err["ctx"]["expected"].replace("'", "")
        return f"{source}: {key} must be one of {allowed} (got {err['input']!r})"
    return f"{source}: {key}: {err['msg'].removeprefix('Value error, ')} (got {err['input']!r})"


def _origin(key: str, origins: dict[str, str]) -> str:
    """Where the value at `key` (or, for an entry, the first of its keys) was set."""
    if key in origins:
        return origins[key]
    return next((where for name, where in origins.items() if name.startswith(key + ".")), "settings")


def _read_yaml(path: Path, must_exist: bool) -> dict:
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
    return raw


def _merged(base: dict, over: dict) -> dict:
    """`base` with `over` on top; mappings are merged key by key."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load(path: Path, backend: str = "", think: str = "", must_exist: bool = False) -> tuple[Settings, dict[str, str]]:
    """The settings, from the flags (`backend`, `think`) > the environment > the config file >
    the defaults, and where each set key came from ("llm.backend" -> "--backend"). ConfigError
    with one line per problem. A missing file means the defaults, unless `must_exist` (the user named it)."""
    from graph.environment import EnvironmentProblem, leaves, overrides

    raw = _read_yaml(path, must_exist)
    try:
        env, env_origins = overrides(Settings)
    except EnvironmentProblem as exc:
        raise ConfigError(str(exc)) from None
    flags = {"llm": {"backend": backend}} if backend else {}
    if think:
        flags["reasoning"] = {"mode": think}
    origins = {**{key: str(path) for key in leaves(raw)}, **env_origins,
               **{key: f"--{name}" for key, name in (("llm.backend", "backend"), ("reasoning.mode", "think"))
                  if key in leaves(flags)}}
    try:
        settings = Settings.model_validate(_merged(_merged(raw, env), flags))
    except ValidationError as exc:
        raise ConfigError("\n".join(_explain(e, origins) for e in exc.errors()))
    return settings, origins


def load_settings(path: Path, backend: str = "", think: str = "", must_exist: bool = False) -> Settings:
    """`load` without the origins."""
    return load(path, backend, think, must_exist)[0]
