"""The one Ollama client: ollama-python's `Client` on llm.ollama.base_url with the configured
timeouts. Every call to Ollama goes through it (the chat model too: langchain-ollama's
`ChatOllama` is built on the same library).

Owns: building the client, the errors a call to Ollama may raise, saying in a few words why
one failed, and Ollama's version (the one endpoint ollama-python has no method for).
Does not own: what is asked of Ollama (llm.py, vram.py, adapters.py, monitor.py).
"""

from __future__ import annotations

import httpx
from ollama import Client, ResponseError

from graph.config import Settings

# ConnectionError: ollama-python could not connect; ResponseError: Ollama answered an HTTP error;
# httpx.HTTPError: a timeout or a dropped connection; ValueError: an answer that is not Ollama's (JSON, shape)
ERRORS = (httpx.HTTPError, ConnectionError, ResponseError, ValueError)


def client(settings: Settings, seconds: float | None = None) -> Client:
    """A client of llm.ollama.base_url that waits `seconds` for an answer (default:
    llm.ollama.connect_timeout_s), connecting within connect_timeout_s or `seconds` if shorter."""
    o = settings.llm.ollama
    seconds = seconds or o.connect_timeout_s
    return Client(host=o.base_url, timeout=httpx.Timeout(seconds, connect=min(seconds, o.connect_timeout_s)))


def reason(exc: BaseException) -> str:
    """Why a call failed, in a few words: the HTTP status and Ollama's error, or the first line
    of the exception (its type when it says nothing)."""
    if isinstance(exc, ResponseError):
        return f"HTTP {exc.status_code}: {exc.error}"
    if type(exc) is ConnectionError:  # ollama-python's, with a long message pointing to its download page
        return "could not connect"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def version(settings: Settings) -> str:
    """The version Ollama reports ('?' when it does not answer)."""
    try:  # no method for /api/version in ollama-python: its request method keeps the host, timeouts and errors
        return str(client(settings)._request_raw("GET", "/api/version").json()["version"])
    except (*ERRORS, KeyError, TypeError):
        return "?"
