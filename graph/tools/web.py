"""Web tools: `web_search` (DuckDuckGo through ddgs) and `fetch_url` (the readable text of a page).

Both are bounded by `tools.web.timeout_s` (T), so with no internet they fail within seconds with a
message the model can act on: a search gives up after T; a page's connect and each read time out
after T, its body stops after 2T and the whole fetch after 3T. Pages are read up to MAX_BYTES and
their text is cut at `tools.web.max_chars`. The output comes from outside and is marked untrusted.
Does not own: the browser (Playwright MCP) or deciding whether a tool may run (approval.py).
"""

from __future__ import annotations

import codecs
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import httpx
from ddgs import DDGS
from ddgs.exceptions import DDGSException
from langchain_core.tools import ToolException, tool
from langgraph.prebuilt import ToolRuntime

from graph.context import Context, of

MAX_BYTES = 3_000_000  # a page is read up to this many bytes, whatever its size
TEXT_TYPES = ("application/json", "application/xml", "application/xhtml+xml", "application/javascript")
USER_AGENT = "Mozilla/5.0 (compatible; local-agent)"
T = TypeVar("T")


@tool
def web_search(query: str, runtime: ToolRuntime[Context]) -> str:
    """Search the web (DuckDuckGo). Returns numbered results: title, URL and snippet.
    Use fetch_url on a result's URL to read the page."""
    web = of(runtime).settings.tools.web
    try:  # ddgs tries several engines and may retry: one overall deadline
        found = _in_time(web.timeout_s, lambda: DDGS(timeout=web.timeout_s).text(query, max_results=web.max_results))
    except TimeoutError:
        raise ToolException(f"Web search got no answer within {web.timeout_s:g} s; the internet may be "
                            "unreachable, so answer without it or tell the user.") from None
    except DDGSException as exc:
        if str(exc) != "No results found.":
            raise ToolException(f"Web search failed ({str(exc)[:200]}); the internet may be unreachable, "
                                "so answer without it or tell the user.") from None
        found = []
    if not found:
        return f"No results for {query!r}; try other words."
    return "\n\n".join(f"{i}. {r.get('title', '')}\n   {r.get('href', '')}\n   {r.get('body', '')}"
                       for i, r in enumerate(found[:web.max_results], start=1))


@tool
def fetch_url(url: str, runtime: ToolRuntime[Context]) -> str:
    """Read a web page (http or https) and return its title and main text, without menus and ads.
    Plain text and JSON come back as they are; long pages are cut."""
    web = of(runtime).settings.tools.web
    if urlsplit(url).scheme.lower() not in ("http", "https") or not urlsplit(url).netloc:
        raise ToolException(f"Only http:// and https:// addresses can be fetched, not {url!r}.")
    try:  # httpx's timeouts leave out DNS lookups: an overall deadline too
        page = _in_time(3 * web.timeout_s, lambda: _download(url, web.timeout_s))
    except (TimeoutError, httpx.TimeoutException):
        raise ToolException(f"{url} did not answer within {web.timeout_s:g} s; the site may be down or the "
                            "internet unreachable.") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise ToolException(f"Could not fetch {url}: {exc or type(exc).__name__}; the site may be down or the "
                            "internet unreachable.") from None
    if not page.ctype and b"\0" in page.body[:1024]:
        raise ToolException(f"{page.url} is binary data, not a page or text; it cannot be read as text.")
    if page.ctype in ("text/html", "application/xhtml+xml") or (not page.ctype and page.body.lstrip()[:1] == b"<"):
        title, text = _readable(page.body.decode(page.charset, "replace") if page.charset else page.body)
    else:
        title, text = "", page.body.decode(page.charset or "utf-8", "replace")
    if len(text) > web.max_chars:
        text = text[:web.max_chars] + f"\n[… cut at {web.max_chars} of {len(text)} characters …]"
    head = f"URL: {page.url}" + (f" (redirected from {url})" if page.redirected else "")
    return "\n".join([head, *([f"Title: {title}"] if title else []), *([page.note] if page.note else []), "",
                      text or "(no readable text on this page)"])


web_search.metadata = {"untrusted": True}
fetch_url.metadata = {"untrusted": True}
TOOLS = [web_search, fetch_url]


def _in_time(seconds: float, work: Callable[[], T]) -> T:
    """`work()`, run in a thread that is left behind (raising TimeoutError) if it takes over `seconds`."""
    answers: queue.Queue = queue.Queue(maxsize=1)

    def run() -> None:
        try:
            answers.put((True, work()))
        except Exception as exc:  # noqa: BLE001 - raised again in the caller's thread
            answers.put((False, exc))

    threading.Thread(target=run, daemon=True, name="web").start()
    try:
        ok, value = answers.get(timeout=seconds)
    except queue.Empty:
        raise TimeoutError from None
    if not ok:
        raise value
    return value


@dataclass
class _Page:
    url: str  # after redirects
    redirected: bool
    ctype: str  # the content type without parameters, "" if the server gave none
    charset: str | None  # the server's, if it gave a known one
    body: bytes  # up to MAX_BYTES
    note: str  # why the body stopped early, if it did


def _download(url: str, timeout_s: float) -> _Page:
    """GET `url`: the start of a textual body, or a ToolException for an HTTP error or a binary type."""
    with httpx.Client(timeout=timeout_s, follow_redirects=True, headers={"User-Agent": USER_AGENT}) as client:
        with client.stream("GET", url) as resp:
            final = str(resp.url)
            if resp.status_code >= 400:
                raise ToolException(f"{final} answered HTTP {resp.status_code} {resp.reason_phrase}; "
                                    "check the address or try another page.")
            ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype and not _is_text(ctype):
                raise ToolException(f"{final} is {ctype}, not a page or text; it cannot be read as text.")
            body, note = _read(resp, deadline=time.monotonic() + 2 * timeout_s)
            return _Page(final, bool(resp.history), ctype, _known(resp.charset_encoding), body, note)


def _is_text(ctype: str) -> bool:
    return ctype.startswith("text/") or ctype in TEXT_TYPES or ctype.endswith(("+json", "+xml"))


def _known(charset: str | None) -> str | None:
    try:
        return codecs.lookup(charset).name if charset else None
    except LookupError:
        return None


def _read(resp: httpx.Response, deadline: float) -> tuple[bytes, str]:
    """The body up to MAX_BYTES and until `deadline`, and a note when it stopped early."""
    body = bytearray()
    for chunk in resp.iter_bytes():
        body += chunk
        if len(body) >= MAX_BYTES:
            return bytes(body[:MAX_BYTES]), f"[The page is larger than {MAX_BYTES:,} bytes; only the start was read.]"
        if time.monotonic() > deadline:
            return bytes(body), "[The page was too slow to load; only the start was read.]"
    return bytes(body), ""


def _readable(html: str | bytes) -> tuple[str, str]:
    """The title and main text of an HTML page (all its text when no main part is found)."""
    import trafilatura  # lazily: ~0.1 s to import

    tree = trafilatura.load_html(html)
    if tree is None:
        return "", ""
    title = " ".join((tree.findtext(".//title") or "").split())
    return title, trafilatura.extract(tree) or trafilatura.html2txt(html)
