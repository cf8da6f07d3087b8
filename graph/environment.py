"""Settings from the environment: `AGENT_*` variables for every config.yaml key, `OLLAMA_HOST`,
and `${VAR}` in MCP server entries.

The naming rule: `AGENT_` + the key's path in config.yaml, upper case, levels joined by a
double underscore: `llm.ollama.model` is `AGENT_LLM__OLLAMA__MODEL`, `tools.shell.policy` is
`AGENT_TOOLS__SHELL__POLICY`. Lists and mappings are JSON (`AGENT_TOOLS__FILES__ROOTS='["~/src"]'`).
pydantic-settings reads them (case-insensitively); `AGENT_HOME` stays the data folder.
`OLLAMA_HOST` (host, host:port or URL, as Ollama's own CLI and ollama-python read it) sets
llm.ollama.base_url unless `AGENT_LLM__OLLAMA__BASE_URL` does.

Owns: reading those variables into a nested dict of overrides with, for each key, the
variable it came from; reading an Ollama host the way Ollama does; expanding `${VAR}` and
`${VAR:-default}`. Does not own: the schema, merging with the file and the flags, or
validating (config.py).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

PREFIX, DELIMITER = "AGENT_", "__"
OLLAMA_HOST = "OLLAMA_HOST"
DEFAULT_OLLAMA_PORT = 11434
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class EnvironmentProblem(ValueError):
    """A variable that cannot be read; the message is one line naming it."""


def variable(path: tuple[str, ...] | list[str]) -> str:
    """The environment variable for a config key path: ('llm', 'ollama', 'model') -> AGENT_LLM__OLLAMA__MODEL."""
    return PREFIX + DELIMITER.join(path).upper()


def overrides(schema: type) -> tuple[dict, dict[str, str]]:
    """The settings the environment gives, as a nested dict shaped like config.yaml, and for
    each leaf key ("llm.ollama.model") the variable that set it."""
    from pydantic_settings import EnvSettingsSource, SettingsError

    environ = dict(os.environ)
    try:
        values = EnvSettingsSource(schema, env_prefix=PREFIX, env_nested_delimiter=DELIMITER, case_sensitive=False)()
    except SettingsError as exc:  # a list or mapping that is not JSON
        field = str(exc).split('"')[1] if '"' in str(exc) else "?"
        raise EnvironmentProblem(f"environment: a list or mapping in {PREFIX}{field.upper()}{DELIMITER}… is not valid "
                                 f"JSON (write them as JSON: {PREFIX}TOOLS{DELIMITER}FILES{DELIMITER}ROOTS='[\"~/src\"]')"
                                 ) from None
    origins = {key: _named(key.split("."), environ) for key in leaves(values)}
    host = environ.get(OLLAMA_HOST, "").strip()
    if host and "llm.ollama.base_url" not in origins:
        try:
            url = ollama_url(host)
        except ValueError:
            raise EnvironmentProblem(f"environment: {OLLAMA_HOST} must be a host, host:port or URL "
                                     f"(got {host!r})") from None
        values.setdefault("llm", {}).setdefault("ollama", {})["base_url"] = url
        origins["llm.ollama.base_url"] = OLLAMA_HOST
    return values, origins


def _named(path: list[str], environ: Mapping[str, str]) -> str:
    """The variable (as the user spelled it) that set the key at `path`, or the mapping above it."""
    spelled = {name.upper(): name for name in environ}
    for end in range(len(path), 0, -1):
        if variable(path[:end]) in spelled:
            return spelled[variable(path[:end])]
    return variable(path)


def leaves(tree: dict, prefix: str = "") -> list[str]:
    """Dotted paths of the non-mapping values in a nested dict."""
    out: list[str] = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        out += leaves(value, path + ".") if isinstance(value, dict) and value else [path]
    return out


def ollama_url(host: str) -> str:
    """An Ollama address as ollama-python and the ollama CLI read OLLAMA_HOST: `host`, `host:port`,
    `:port` or a URL; http and port 11434 unless given (80/443 for an http/https URL without a port).
    ValueError for a bad port."""
    scheme, _, hostport = host.strip().partition("://")
    port = DEFAULT_OLLAMA_PORT
    if not hostport:
        scheme, hostport = "http", host.strip()
    elif scheme in ("http", "https"):
        port = 80 if scheme == "http" else 443
    else:
        raise ValueError(f"unknown scheme {scheme}")
    split = urlsplit(f"{scheme}://{hostport}")
    name, port = split.hostname or "127.0.0.1", split.port or port  # .port raises ValueError when bad
    try:
        if isinstance(ipaddress.ip_address(name), ipaddress.IPv6Address):
            name = f"[{name}]"
    except ValueError:
        pass
    path = split.path.strip("/")
    return f"{scheme}://{name}:{port}" + (f"/{path}" if path else "")


def expand(text: str, environ: Mapping[str, str] | None = None) -> str:
    """`${VAR}` and `${VAR:-default}` replaced from the environment. KeyError(VAR) when VAR is
    unset and has no default."""
    environ = os.environ if environ is None else environ

    def value(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is None:
            raise KeyError(name)
        return default

    return _VARIABLE.sub(value, text)
