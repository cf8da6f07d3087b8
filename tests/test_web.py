"""web_search and fetch_url against a real HTTP server on 127.0.0.1 (no internet here)."""

import json
import socket
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ddgs.exceptions import DDGSException
from tooling import call

from graph.context import Context
from graph.tools import web
from graph.tools.web import fetch_url, web_search

TIMEOUT_S = 2

NAV = "<nav><ul>" + "".join(f"<li><a href='/m{i}'>Menu entry {i}</a></li>" for i in range(12)) + "</ul></nav>"
ARTICLE = ("<html><head><title>Birds of the North</title></head><body>" + NAV + "<article><h1>Birds</h1>"
           + "".join(f"<p>Paragraph {i}: the arctic tern migrates across the northern sea every spring.</p>"
                     for i in range(8))
           + "</article><footer>Copyright 2024 Footer Corp. Privacy policy. Cookie settings.</footer></body></html>")
JAPANESE = ("<html><head><meta charset='shift_jis'><title>吾輩は猫である</title></head><body><article><p>"
            + "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。" * 6 + "</p></article></body></html>")
HUGE_BYTES = 1_000_000_000
PAGES = {  # path: (status, content type, body)
    "/article": (200, "text/html; charset=utf-8", ARTICLE.encode()),
    "/ja": (200, "text/html", JAPANESE.encode("shift_jis")),
    "/plain": (200, "text/plain; charset=utf-8", "line one\n  indented line two\n".encode()),
    "/odd": (200, "text/plain; charset=no-such-charset", "café\n".encode()),
    "/data.json": (200, "application/json", json.dumps({"name": "tern", "legs": 2}).encode()),
    "/bare": (200, "text/html", b"<html><body><div>Only a short line</div></body></html>"),
    "/empty": (200, "text/html", b"<html><head><title>Blank</title></head><body></body></html>"),
    "/photo.png": (200, "image/png", b"\x89PNG\r\n\x1a\n" + bytes(200)),
    "/missing": (404, "text/html", b"<h1>Not Found</h1>"),
    "/broken": (500, "text/plain", b"oops"),
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server name
        if self.path == "/old":
            self.send_response(302)
            self.send_header("Location", "/article")
            self.end_headers()
        elif self.path == "/huge":  # an endless-looking HTML page, sent in chunks
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(HUGE_BYTES))
            self.end_headers()
            chunk = b"<p>" + b"word " * 13105 + b"</p>\n"  # 65,536 bytes
            try:
                self.wfile.write(b"<html><body>")
                for _ in range(HUGE_BYTES // len(chunk)):
                    self.wfile.write(chunk)
            except OSError:
                pass  # the client stopped reading, as it should
        elif self.path == "/slow":  # a byte now and then, for ever
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"drip ")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass
        else:
            status, ctype, body = PAGES.get(self.path, (404, "text/plain", b"no"))
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def ctx(tmp_path, make_config):
    path = make_config({"tools": {"web": {"timeout_s": TIMEOUT_S, "max_chars": 2000}}})
    return Context(home=str(tmp_path / "home"), config=str(path), cwd=str(tmp_path))


def fetch(ctx, url):
    return call(fetch_url, ctx, url=url)


def test_metadata_marks_web_output_untrusted():
    assert [t.name for t in web.TOOLS] == ["web_search", "fetch_url"]
    assert all(t.metadata["untrusted"] is True and "acts" not in t.metadata for t in web.TOOLS)


def test_article_text_without_menu_and_footer(ctx, site):
    msg = fetch(ctx, f"{site}/article")
    assert msg.status != "error"
    assert msg.content.startswith(f"URL: {site}/article\nTitle: Birds of the North\n")
    assert "arctic tern migrates" in msg.content and "Paragraph 7" in msg.content
    assert "Menu entry" not in msg.content and "Footer Corp" not in msg.content


def test_japanese_page_in_its_own_encoding(ctx, site):
    msg = fetch(ctx, f"{site}/ja")
    assert "Title: 吾輩は猫である" in msg.content
    assert "名前はまだ無い。" in msg.content


def test_plain_text_and_json_as_they_are(ctx, site):
    assert fetch(ctx, f"{site}/plain").content.endswith("\n\nline one\n  indented line two\n")
    assert fetch(ctx, f"{site}/data.json").content.endswith('\n\n{"name": "tern", "legs": 2}')


def test_unknown_charset_reads_as_utf8(ctx, site):
    assert fetch(ctx, f"{site}/odd").content.endswith("\n\ncafé\n")


def test_falls_back_to_all_text_when_no_article_is_found(ctx, site):
    assert fetch(ctx, f"{site}/bare").content.endswith("Only a short line")


def test_empty_page_says_so(ctx, site):
    assert fetch(ctx, f"{site}/empty").content == f"URL: {site}/empty\nTitle: Blank\n\n(no readable text on this page)"


def test_redirect_shows_the_final_url(ctx, site):
    msg = fetch(ctx, f"{site}/old")
    assert msg.content.startswith(f"URL: {site}/article (redirected from {site}/old)\n")
    assert "arctic tern" in msg.content


def test_huge_page_is_read_up_to_the_cap_and_cut(ctx, site):
    tracemalloc.start()
    try:
        msg = fetch(ctx, f"{site}/huge")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "larger than 3,000,000 bytes; only the start was read" in msg.content
    assert "[… cut at 2000 of " in msg.content
    assert len(msg.content) < 2300
    assert peak < 30 * web.MAX_BYTES  # bounded by the cap (trafilatura needs ~20x), not by the 1 GB page


@pytest.mark.parametrize(("path", "expected"), [
    ("/missing", "answered HTTP 404 Not Found; check the address"),
    ("/broken", "answered HTTP 500 Internal Server Error"),
    ("/photo.png", "is image/png, not a page or text"),
])
def test_errors_and_binary_are_clear_messages(ctx, site, path, expected):
    msg = fetch(ctx, f"{site}{path}")
    assert msg.status == "error"
    assert expected in msg.content


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "javascript:alert(1)", "example.com"])
def test_only_http_and_https(ctx, url):
    msg = fetch(ctx, url)
    assert msg.status == "error"
    assert "Only http:// and https:// addresses" in msg.content


def test_closed_port_fails_with_a_message(ctx):
    msg = fetch(ctx, "http://127.0.0.1:9/")
    assert msg.status == "error"
    assert "Could not fetch http://127.0.0.1:9/" in msg.content


def test_silent_server_fails_within_the_timeout(ctx):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never answers
        start = time.monotonic()
        msg = fetch(ctx, f"http://127.0.0.1:{silent.getsockname()[1]}/")
    assert time.monotonic() - start < TIMEOUT_S + 2
    assert msg.status == "error"
    assert f"did not answer within {TIMEOUT_S} s; the site may be down or the internet unreachable" in msg.content


def test_unroutable_address_fails_within_the_timeout(ctx):
    start = time.monotonic()
    msg = fetch(ctx, "http://10.255.255.1/")
    assert time.monotonic() - start < TIMEOUT_S + 2
    assert msg.status == "error"  # a timeout offline; some sandboxes intercept it and answer 404


def quick(tmp_path, make_config):
    """A context whose web timeout is half a second."""
    path = make_config({"tools": {"web": {"timeout_s": 0.5}}}, name="quick.yaml")
    return Context(home=str(tmp_path / "home"), config=str(path), cwd=str(tmp_path))


def test_slow_page_stops_at_the_deadline(tmp_path, make_config, site):
    ctx = quick(tmp_path, make_config)
    start = time.monotonic()
    msg = fetch(ctx, f"{site}/slow")
    assert time.monotonic() - start < 3
    assert "too slow to load; only the start was read" in msg.content
    assert "drip" in msg.content


def test_hanging_name_lookup_is_cut_off(tmp_path, make_config, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: time.sleep(5))  # httpx has no timeout for it
    start = time.monotonic()
    msg = fetch(quick(tmp_path, make_config), "http://slow-dns.example/")
    assert time.monotonic() - start < 2.5
    assert msg.status == "error"
    assert "did not answer within 0.5 s" in msg.content


def test_search_without_internet_is_a_message_not_a_hang(ctx):
    start = time.monotonic()
    msg = call(web_search, ctx, query="arctic tern migration")
    assert time.monotonic() - start < 6 * TIMEOUT_S
    if msg.status == "error":  # no internet, as in the sandbox and CI
        assert "Web search" in msg.content and "internet may be unreachable" in msg.content
    else:  # a machine that is online gets real results
        assert msg.content.startswith("1. ")


class FakeDDGS:
    """Stands in for ddgs.DDGS: `behaviour(query, max_results)` is what text() does."""

    behaviour = None

    def __init__(self, timeout):
        self.timeout = timeout

    def text(self, query, max_results):
        return FakeDDGS.behaviour(query, max_results)


def test_search_gives_up_at_the_deadline(tmp_path, make_config, monkeypatch):
    FakeDDGS.behaviour = lambda query, n: time.sleep(5)
    monkeypatch.setattr(web, "DDGS", FakeDDGS)
    start = time.monotonic()
    msg = call(web_search, quick(tmp_path, make_config), query="anything")
    assert time.monotonic() - start < 1.5
    assert msg.status == "error"
    assert "no answer within 0.5 s; the internet may be unreachable" in msg.content


def test_search_with_no_results_says_so(ctx, monkeypatch):
    def nothing(query, n):
        raise DDGSException("No results found.")
    FakeDDGS.behaviour = nothing
    monkeypatch.setattr(web, "DDGS", FakeDDGS)
    msg = call(web_search, ctx, query="zzqx")
    assert msg.status != "error"
    assert msg.content == "No results for 'zzqx'; try other words."


def test_search_results_are_numbered_and_capped(ctx, monkeypatch):
    hits = [{"title": f"Tern {i}", "href": f"https://birds.example/{i}", "body": f"About terns, part {i}."}
            for i in range(1, 9)]
    FakeDDGS.behaviour = lambda query, n: hits
    monkeypatch.setattr(web, "DDGS", FakeDDGS)
    msg = call(web_search, ctx, query="tern")
    assert msg.content.startswith("1. Tern 1\n   https://birds.example/1\n   About terns, part 1.\n\n2. Tern 2")
    assert "5. Tern 5" in msg.content and "6. Tern 6" not in msg.content  # tools.web.max_results: 5
