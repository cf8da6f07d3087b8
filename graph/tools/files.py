"""File tools: `read_file`, `write_file`, `edit_file` and `list_dir`, confined to the workspace, and `undo`.

Owns: turning the path the model gives into a real path inside a workspace root (`resolve`:
`..`, absolute paths and symlinks leading out, the agent's own data folder, control and
invisible characters, look-alike dots and slashes, `~` and URLs are refused), atomic writes
(temp file beside the target, then rename) that first journal the previous version, and
`undo`, the user's /undo, which puts the latest journaled version back.
`~` is never expanded: a path starting with `~/` is refused, any other `~` is a plain name.
Backslashes count as separators on every system, so `..\\x` is refused everywhere.
Does not own: the journal table (store.py), the roots setting (config.py) or whether a write
needs the user's approval (approval.py reads the tools' `acts` metadata).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import stat
import unicodedata
from pathlib import Path, PurePath

from langchain_core.tools import ToolException, tool
from langgraph.prebuilt import ToolRuntime

from graph.context import Context, of

LIST_MAX = 200  # entries list_dir shows
PROBE = 1024  # bytes looked at for NUL to tell a binary file
INVISIBLE = {"Cc", "Cf", "Cs", "Zl", "Zp"}  # control, format (RTL override, zero-width), surrogates, line breaks
SLASHES = set("\u2044\u2215\u2216\u29f8\u29f9")  # slash look-alikes that NFKC leaves alone
URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class UndoError(Exception):
    """/undo cannot restore the file (it changed since, or the OS refused); the message says why."""


def resolve(ctx: Context, path: str) -> Path:
    """The real path (symlinks followed) that `path` names inside a workspace root.
    Relative paths start at the first root. Raises ToolException naming the roots."""
    for ch in path:
        if unicodedata.category(ch) in INVISIBLE:
            raise _refused(ctx, f"The path contains the control or invisible character U+{ord(ch):04X}; "
                                "write it with plain characters")
        if not ch.isascii() and (ch in SLASHES or set(unicodedata.normalize("NFKC", ch)) & set("./\\")):
            raise _refused(ctx, f"The path contains {ch} (U+{ord(ch):04X} {unicodedata.name(ch, '')}), which "
                                "reads as '.', '/' or '\\'; use the plain ASCII character")
    plain = path.strip().replace("\\", "/")
    if not plain:
        raise _refused(ctx, "The path is empty")
    if URL.match(plain):
        raise _refused(ctx, f"{path!r} is a URL; give a file path")
    if plain == "~" or plain.startswith("~/"):
        raise _refused(ctx, "'~' is not expanded to a home folder; give a path inside the workspace")
    try:
        real = (ctx.roots()[0] / plain).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise _refused(ctx, f"{path!r} cannot be resolved ({exc})") from None
    home = Path(ctx.home).resolve()
    if _fold(real).is_relative_to(_fold(home)):  # also catches case and width variants (Windows, macOS)
        raise _refused(ctx, f"{path!r} is in the agent's own data folder ({home}), which file tools never touch")
    if not any(real.is_relative_to(root) for root in ctx.roots()):
        raise _refused(ctx, f"{path!r} leads outside the workspace (to {real})")
    return real


def _fold(path: Path) -> PurePath:
    return PurePath(unicodedata.normalize("NFKC", str(path)).casefold())


def _refused(ctx: Context, why: str) -> ToolException:
    roots = ctx.roots()
    return ToolException(f"{why}. Workspace roots: {', '.join(map(str, roots))}; "
                         f"relative paths start at {roots[0]}.")


def _show(ctx: Context, real: Path) -> str:
    """How a path is named back to the model: relative to the first root when inside it."""
    root = ctx.roots()[0]
    return real.relative_to(root).as_posix() if real.is_relative_to(root) else str(real)


def _is_file(ctx: Context, real: Path, shown: str, must_exist: bool) -> bool:
    """Whether `real` is an existing regular file; refuses folders, special files and, if
    `must_exist`, a missing file."""
    if real.is_dir():
        raise ToolException(f"{shown} is a folder; use list_dir to see what it holds.")
    if real.is_file():
        return True
    if real.exists():
        raise ToolException(f"{shown} is not a regular file.")
    if must_exist:
        raise ToolException(f"No such file: {shown} (relative paths start at {ctx.roots()[0]}); "
                            "list_dir shows what exists, write_file creates a file.")
    return False


def _current(ctx: Context, real: Path, shown: str, must_exist: bool = False) -> bytes | None:
    """The file's bytes, or None when it does not exist yet (see _is_file)."""
    if not _is_file(ctx, real, shown, must_exist):
        return None
    try:
        return real.read_bytes()
    except OSError as exc:
        raise ToolException(f"Cannot read {shown}: {exc.strerror or exc}.") from None


def _atomic_write(path: Path, data: bytes) -> None:
    """Write a temp file beside `path` and rename it over `path`, keeping its permission bits:
    readers see the old file or the new one, never half of one; a failure leaves no temp file."""
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else None
    tmp = path.with_name(f".{secrets.token_hex(6)}.agent-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _save(ctx: Context, real: Path, shown: str, before: bytes | None, data: bytes, tool_name: str) -> None:
    """Journal the previous version for /undo, then write atomically; a failed write is taken back out
    of the journal (marked undone) so /undo never restores over a write that did not happen."""
    store = ctx.store
    edit = store.record_edit(str(real), before, hashlib.sha256(data).hexdigest(), tool_name,
                             keep=ctx.settings.tools.files.undo_keep)
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(real, data)
    except BaseException as exc:
        store.mark_undone(edit)
        if isinstance(exc, OSError):
            raise ToolException(f"Could not write {shown}: {exc.strerror or exc}; the file is unchanged.") from None
        raise


@tool(parse_docstring=True)
def read_file(path: str, runtime: ToolRuntime[Context], offset: int = 0) -> str:
    """Read a text file of the workspace. Long files are cut; the note at the end says how to read on.

    Args:
        path: The file, relative to the workspace (or absolute inside it).
        offset: The character to start from (0 = the beginning).
    """
    ctx = of(runtime)
    real = resolve(ctx, path)
    shown = _show(ctx, real)
    if offset < 0:
        raise ToolException("offset must be 0 or more.")
    _is_file(ctx, real, shown, must_exist=True)
    cap = ctx.settings.tools.files.max_read_chars
    try:
        with real.open("rb") as f:
            if b"\0" in f.read(PROBE):
                raise ToolException(f"{shown} is a binary file; read_file reads text only.")
        with real.open(encoding="utf-8", errors="replace") as f:
            skipped = 0
            while skipped < offset and (chunk := f.read(min(offset - skipped, 1 << 20))):
                skipped += len(chunk)
            text = f.read(cap + 1)
    except OSError as exc:
        raise ToolException(f"Cannot read {shown}: {exc.strerror or exc}.") from None
    if skipped < offset:
        raise ToolException(f"offset {offset} is past the end of {shown}, which has {skipped} characters.")
    if not text:
        return f"({shown} is empty)" if offset == 0 else f"(nothing after offset {offset} in {shown})"
    if len(text) > cap:
        return f"{text[:cap]}\n[… cut at {cap} characters; call read_file with offset={offset + cap} to read on …]"
    return text


@tool(parse_docstring=True)
def write_file(path: str, content: str, runtime: ToolRuntime[Context]) -> str:
    """Create a file, or replace all of its content, in the workspace (missing folders are created).
    To change part of an existing file, use edit_file instead.

    Args:
        path: The file, relative to the workspace (or absolute inside it).
        content: The complete new text of the file.
    """
    ctx = of(runtime)
    real = resolve(ctx, path)
    shown = _show(ctx, real)
    before = _current(ctx, real, shown)
    data = content.encode("utf-8")
    _save(ctx, real, shown, before, data, "write_file")
    return f"{'Overwrote' if before is not None else 'Created'} {shown} ({len(data)} bytes)."


@tool(parse_docstring=True)
def edit_file(path: str, old_text: str, new_text: str, runtime: ToolRuntime[Context],
              replace_all: bool = False) -> str:
    """Replace exact text in a file of the workspace. old_text must match the file exactly
    (spaces and line breaks included) and only once, unless replace_all is true.

    Args:
        path: The file, relative to the workspace (or absolute inside it).
        old_text: The exact text to replace; include nearby lines to make it unique.
        new_text: The text to put in its place.
        replace_all: Replace every occurrence instead of exactly one.
    """
    ctx = of(runtime)
    real = resolve(ctx, path)
    shown = _show(ctx, real)
    before = _current(ctx, real, shown, must_exist=True)
    if b"\0" in before[:PROBE]:
        raise ToolException(f"{shown} is a binary file; edit_file edits text only.")
    try:
        text = before.decode("utf-8")
    except UnicodeDecodeError:
        raise ToolException(f"{shown} is not UTF-8 text; editing it would damage it.") from None
    if not old_text:
        raise ToolException("old_text is empty; to create or replace a whole file use write_file.")
    if old_text == new_text:
        raise ToolException("old_text and new_text are the same; there is nothing to change.")
    count = text.count(old_text)
    if count == 0 and "\r\n" in text and "\r\n" not in old_text:  # read_file shows CRLF files with \n
        old_text, new_text = old_text.replace("\n", "\r\n"), new_text.replace("\n", "\r\n")
        count = text.count(old_text)
    if count == 0:
        squashed = " ".join(old_text.split())
        hint = ("It does match if spaces and line breaks are ignored: copy old_text exactly as the file has it."
                if squashed and squashed in " ".join(text.split()) else "Read the file and copy old_text exactly.")
        raise ToolException(f"old_text was not found in {shown}. {hint}")
    if count > 1 and not replace_all:
        raise ToolException(f"old_text occurs {count} times in {shown}; include more surrounding lines to make "
                            f"it unique, or set replace_all to true to replace all {count}.")
    data = text.replace(old_text, new_text, -1 if replace_all else 1).encode("utf-8")
    _save(ctx, real, shown, before, data, "edit_file")
    replaced = count if replace_all else 1
    return f"Edited {shown}: replaced {replaced} occurrence{'s' if replaced > 1 else ''}."


@tool(parse_docstring=True)
def list_dir(runtime: ToolRuntime[Context], path: str = ".") -> str:
    """List a folder of the workspace: sub-folders end with "/", files show their size in bytes.

    Args:
        path: The folder, relative to the workspace (or absolute inside it); "." is its top.
    """
    ctx = of(runtime)
    real = resolve(ctx, path)
    shown = _show(ctx, real)
    if not real.is_dir():
        raise ToolException(f"{shown} is a file; use read_file to read it." if real.exists()
                            else f"No such folder: {shown} (relative paths start at {ctx.roots()[0]}).")
    try:
        with os.scandir(real) as found:
            entries = sorted(found, key=lambda e: e.name)
    except OSError as exc:
        raise ToolException(f"Cannot list {shown}: {exc.strerror or exc}.") from None
    if not entries:
        return f"{shown}/ is empty."
    home = Path(ctx.home).resolve()
    lines = [f"{shown}/ ({len(entries)} {'entry' if len(entries) == 1 else 'entries'}):",
             *(_entry(e, home) for e in entries[:LIST_MAX])]
    if len(entries) > LIST_MAX:
        lines.append(f"[… {len(entries) - LIST_MAX} more entries not shown …]")
    return "\n".join(lines)


def _entry(entry: os.DirEntry, home: Path) -> str:
    link = " (link)" if entry.is_symlink() else ""
    try:
        if entry.is_dir():
            off = " (the agent's data folder: off limits)" if Path(entry.path) == home else ""
            return f"{entry.name}/{link}{off}"
        return f"{entry.name}  {entry.stat().st_size} bytes{link}"
    except OSError:
        return f"{entry.name} (broken link)"


read_file.metadata = {"untrusted": True}
list_dir.metadata = {"untrusted": True}
write_file.metadata = {"acts": "write"}
edit_file.metadata = {"acts": "write"}

TOOLS = [read_file, write_file, edit_file, list_dir]


def undo(ctx: Context, force: bool = False) -> str:
    """Restore the file of the latest edit not yet undone (delete it if the edit created it);
    one line says what was done. Raises UndoError if the file changed since, unless `force`.
    Not confined to the current roots: it only ever touches files in the edit journal."""
    store = ctx.store
    edit = store.last_edit()
    if edit is None:
        return "nothing to undo"
    path, tool_name = Path(edit["path"]), edit["tool"]
    now = path.read_bytes() if path.is_file() else None
    if not force and (now is None or hashlib.sha256(now).hexdigest() != edit["after_sha"]):
        raise UndoError(f"{path} changed after the agent's {tool_name}, so it was not restored; "
                        "undo with force to restore it anyway (the later changes would be lost)")
    try:
        if edit["before"] is None:
            path.unlink(missing_ok=True)
            done = f"removed {path}, which the agent's {tool_name} had created"
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, edit["before"])
            done = f"restored {path} as it was before the agent's {tool_name}"
    except OSError as exc:
        raise UndoError(f"cannot restore {path}: {exc.strerror or exc}") from None
    store.mark_undone(edit["id"])
    return done
