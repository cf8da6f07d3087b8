"""The script Streamlit runs for `agent.py ui`: the session this process serves and the pages.

Streamlit runs this file anew on every click; what must outlive a run (the session, the turn
in progress) is made once per process with `st.cache_resource` (the one place Streamlit keeps
objects between runs). The arguments come from `agent.py ui` (graph/cli/ui.py): --home,
--config, --backend, --think. Does not own: the pages (chat.py, monitoring.py, ...) or
starting the server (graph/cli/ui.py).
"""

from __future__ import annotations

import argparse
import sys

import streamlit as st

from graph.context import Context
from graph.session import Session
from graph.web.ui import chat, evolution, learning, monitoring
from graph.web.ui.live import Desk


def options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="graph/web/ui/app.py")
    for name in ("--home", "--config", "--backend", "--think"):
        parser.add_argument(name, default="")
    return parser.parse_known_args(argv)[0]


@st.cache_resource(show_spinner="opening the session…")
def desk(home: str, config: str, backend: str, think: str) -> Desk:
    """The process's session (made on the first page view, then shared by every tab)."""
    session = Session(Context(home=home, config=config, backend=backend, think=think, interactive=True))
    opened = Desk(session)
    opened.notices = session.recover()
    session.backend.warm()  # the embedded model loads while the user types
    return opened


def main() -> None:
    st.set_page_config(page_title="agent", page_icon="🤖", layout="wide")
    args = options(sys.argv[1:])
    served = desk(args.home, args.config, args.backend, args.think)
    backend = served.session.backend
    st.sidebar.caption(f"{backend.name}: {backend.model} · data: {served.session.ctx.home}")
    if backend.notice:
        st.sidebar.warning(backend.notice, icon="⚠️")
    pages = [st.Page(lambda: chat.page(served), title="Chat", icon="💬", url_path="chat", default=True),
             st.Page(lambda: monitoring.page(served), title="Monitoring", icon="📊", url_path="monitoring"),
             st.Page(lambda: learning.page(served), title="Learning", icon="📈", url_path="learning"),
             st.Page(lambda: evolution.page(served), title="Evolution", icon="🧬", url_path="evolution")]
    st.navigation(pages).run()


main()
