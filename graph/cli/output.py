"""What every command prints the same way: the facts as JSON (--json) or a layout for people,
a user's mistake as one `error:` line, and the text helpers the layouts share.

Owns: Out, fail, handled, printable, when, one_line. Does not own: any command's layout
(each module of graph/cli lays out its own). Imports only the standard library and
graph/actions/__init__.py (Problem).
"""

from __future__ import annotations

import json
import re
import sys
import time

from graph.actions import Problem  # commands raise it too; the actions raise their own, shown as `error:`


class Out:
    """Prints either the facts as JSON (--json) or their layout for people."""

    def __init__(self, console, as_json: bool):
        self.console, self.json = console, as_json

    def __call__(self, data, view) -> None:
        if self.json:
            print(json.dumps(data, ensure_ascii=False, indent=1))
        else:
            self.console.print(view, highlight=False, markup=False)


def fail(text: str) -> int:
    """One `error:` line on stderr; the exit code 1."""
    print(f"error: {text}", file=sys.stderr)
    return 1


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def printable(text: str) -> str:
    """Text without terminal control characters (stored text and model output may carry them)."""
    return _CONTROL.sub("", text)


def when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "—"


def one_line(text: str, width: int) -> str:
    text = " ".join(printable(text).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def handled(command, args, ctx, console) -> int:
    """Run `command(args, ctx, out, store)` (reward, prompt, data, learn): a bad config is
    reported first; a Problem is one `error:` line and the exit code 1."""
    ctx.settings  # noqa: B018 - a bad config is reported first
    try:
        command(args, ctx, Out(console, getattr(args, "json", False)), ctx.store)
    except Problem as exc:
        return fail(str(exc))
    return 0
