"""The file tools on a real filesystem under tmp_path: confinement to the workspace roots,
atomic writes, /undo, edit rules, caps and Japanese names and text."""

import os
import stat
from pathlib import Path

import pytest
from tooling import call

from graph.context import Context
from graph.tools import files
from graph.tools.files import TOOLS, UndoError, edit_file, list_dir, read_file, undo, write_file


@pytest.fixture(autouse=True)
def _errors_as_messages(monkeypatch):
    for tool in TOOLS:  # what the registry does: a ToolException becomes the model's observation
        monkeypatch.setattr(tool, "handle_tool_error", True)


@pytest.fixture
def ws(tmp_path, make_config):
    """A workspace (first root) holding the data folder, a second root, and folders outside."""
    ws, root2, outside, notroot = (tmp_path / n for n in ("ws", "root2", "outside", "notroot"))
    for folder in (ws / "a", root2, outside, notroot):
        folder.mkdir(parents=True)
    (ws / "notes.txt").write_text("hello\n", encoding="utf-8")
    (root2 / "r2.txt").write_text("second root\n", encoding="utf-8")
    (outside / "secret.txt").write_text("top secret\n", encoding="utf-8")
    links = {"link_file": outside / "secret.txt", "link_dir": outside, "chain1": ws / "a" / "chain2",
             "a/chain2": outside / "secret.txt", "dangling": outside / "new.txt", "dlink": ws / "data",
             "inside_link": ws / "notes.txt", "loop_a": ws / "loop_b", "loop_b": ws / "loop_a"}
    for name, target in links.items():
        (ws / name).symlink_to(target)
    ctx = Context(home=str(ws / "data"), cwd=str(ws),
                  config=str(make_config({"tools": {"files": {"roots": [str(ws), str(root2)]}}})))
    ctx.store  # noqa: B018 - the data folder and its database exist, as in a real run
    return ctx


def tree(top: Path) -> dict:
    """Every file, folder and link under `top` with its content: to prove nothing was written."""
    found = {}
    for folder, dirs, names in os.walk(top):
        for name in dirs + names:
            path = Path(folder, name)
            found[path] = (os.readlink(path) if path.is_symlink() else
                           "dir" if path.is_dir() else path.read_bytes())
    return found


ESCAPES = {
    "parent": "../outside/secret.txt",
    "etc_passwd": "../../etc/passwd",
    "deep_parent": "../" * 30 + "etc/passwd",
    "absolute_system": "/etc/passwd",
    "absolute_outside": "{outside}/secret.txt",
    "symlink_file": "link_file",
    "symlinked_dir": "link_dir/secret.txt",
    "symlink_chain": "chain1",
    "dangling_symlink_out": "dangling",
    "down_then_up": "a/../../outside/secret.txt",
    "symlink_then_up": "link_dir/../outside/secret.txt",
    "windows_backslash": "..\\outside\\secret.txt",
    "fullwidth_dots_slash": "\uff0e\uff0e\uff0foutside\uff0fsecret.txt",  # fullwidth "../"
    "one_dot_leader": "\u2024\u2024/outside/secret.txt",
    "two_dot_leader": "\u2025/outside/secret.txt",
    "division_slash": "..\u2215outside\u2215secret.txt",
    "nul": "notes.txt\x00.png",
    "newline": "notes\n.txt",
    "rtl_override": "\u202etxt.sfile",
    "zero_width": "..\u200b/outside/secret.txt",
    "data_relative": "data/agent.db",
    "data_absolute": "{home}/agent.db",
    "data_folder": "data",
    "data_other_case": "DATA/agent.db",
    "data_fullwidth": "\uff44\uff41\uff54\uff41/agent.db",  # fullwidth "data"
    "data_via_parent": "a/../data/agent.db",
    "data_via_symlink": "dlink/agent.db",
    "tilde_home": "~/.bashrc",
    "tilde_alone": "~",
    "file_url": "file:///etc/passwd",
    "file_url_inside": "file://{ws}/notes.txt",
    "not_a_root": "{notroot}/x.txt",
    "symlink_loop": "loop_a",
    "empty": "  ",
}


def fill(path: str, ctx: Context) -> str:
    top = Path(ctx.cwd).parent
    return path.format(ws=top / "ws", outside=top / "outside", notroot=top / "notroot", home=ctx.home)


@pytest.mark.parametrize("path", ESCAPES.values(), ids=ESCAPES.keys())
def test_escapes_are_refused_for_read_and_write(ws, path):
    path = fill(path, ws)
    before = tree(Path(ws.cwd).parent)
    for tool, args in ((read_file, {}), (write_file, {"content": "pwned"}),
                       (edit_file, {"old_text": "top secret", "new_text": "pwned"})):
        result = call(tool, ws, path=path, **args)
        assert result.status == "error", (tool.name, result.content)
        assert ws.cwd in result.content  # the roots are named so the model can correct itself
        assert "top secret" not in result.content
    assert tree(Path(ws.cwd).parent) == before  # nothing written anywhere, inside or out
    assert undo(ws) == "nothing to undo"


INSIDE = {
    "url_encoded_dots": ("%2e%2e/%2e%2e/etc/passwd", "ws/%2e%2e/%2e%2e/etc/passwd"),
    "second_root": ("{root2}/new.txt", "root2/new.txt"),
    "absolute_inside": ("{ws}/abs.txt", "ws/abs.txt"),
    "parent_within": ("a/../b.txt", "ws/b.txt"),
    "symlink_inside": ("inside_link", "ws/notes.txt"),
    "tilde_in_name": ("~user/x.txt", "ws/~user/x.txt"),
    "fullwidth_digit": ("第１章.txt", "ws/第１章.txt"),
    "new_folders": ("x/y/z.txt", "ws/x/y/z.txt"),
}


@pytest.mark.parametrize("path,lands", INSIDE.values(), ids=INSIDE.keys())
def test_paths_inside_the_roots_work_and_stay_inside(ws, path, lands):
    top = Path(ws.cwd).parent
    path = path.format(ws=top / "ws", root2=top / "root2")
    assert call(write_file, ws, path=path, content="内容 ok").status == "success"
    assert (top / lands).read_text(encoding="utf-8") == "内容 ok"
    assert call(read_file, ws, path=path).content == "内容 ok"
    assert (top / "outside" / "secret.txt").read_text() == "top secret\n"


def test_symlink_inside_is_kept_and_its_target_written(ws):
    call(write_file, ws, path="inside_link", content="new")
    assert (Path(ws.cwd) / "inside_link").is_symlink() and (Path(ws.cwd) / "notes.txt").read_text() == "new"


def test_default_root_is_the_start_folder(tmp_path, make_config):
    (tmp_path / "ws").mkdir()
    ctx = Context(home=str(tmp_path / "home"), config=str(make_config({})), cwd=str(tmp_path / "ws"))
    assert call(write_file, ctx, path="ok.txt", content="x").status == "success"
    assert (tmp_path / "ws" / "ok.txt").exists()
    refused = call(write_file, ctx, path="../escape.txt", content="x")
    assert refused.status == "error" and not (tmp_path / "escape.txt").exists()


def test_list_dir_is_confined_too(ws):
    for path in ("..", "link_dir", "data", "~"):
        assert call(list_dir, ws, path=path).status == "error"


def test_list_dir_sorts_marks_folders_and_sizes(ws):
    out = call(list_dir, ws).content.splitlines()
    assert out[0].startswith("./ (")
    names = [line.split()[0] for line in out[1:]]
    assert names == sorted(names)
    assert "a/" in names and "notes.txt  6 bytes" in out and "data/ (the agent's data folder: off limits)" in out
    assert "link_dir/ (link)" in out and "dangling (broken link)" in out


def test_list_dir_cap_says_how_many_were_left_out(ws):
    many = Path(ws.cwd) / "many"
    many.mkdir()
    for i in range(files.LIST_MAX + 5):
        (many / f"f{i:03}").touch()
    out = call(list_dir, ws, path="many").content.splitlines()
    assert len(out) == 1 + files.LIST_MAX + 1 and "5 more entries" in out[-1]
    assert call(list_dir, ws, path="notes.txt").status == "error"


def test_read_cap_and_offset(ws, make_config):
    ctx = Context(home=ws.home, cwd=ws.cwd, config=str(make_config({"tools": {"files": {"max_read_chars": 200}}})))
    text = "".join(f"{i:09}\n" for i in range(45))  # 450 characters
    (Path(ws.cwd) / "long.txt").write_text(text)
    first = call(read_file, ctx, path="long.txt").content
    assert first.startswith(text[:200]) and "offset=200" in first
    second = call(read_file, ctx, path="long.txt", offset=200).content
    assert second.startswith(text[200:400]) and "offset=400" in second
    assert call(read_file, ctx, path="long.txt", offset=400).content == text[400:]
    assert "past the end" in call(read_file, ctx, path="long.txt", offset=500).content
    assert call(read_file, ctx, path="long.txt", offset=-1).status == "error"


def test_read_refuses_binary_folders_and_special_files_and_tolerates_bad_bytes(ws):
    top = Path(ws.cwd)
    (top / "image.png").write_bytes(b"\x89PNG\r\n\x00\x00data")
    (top / "bad.txt").write_bytes(b"ok \xff\xfe end")
    (top / "empty.txt").touch()
    assert "binary" in call(read_file, ws, path="image.png").content
    assert "list_dir" in call(read_file, ws, path="a").content
    assert "No such file" in call(read_file, ws, path="missing.txt").content
    assert call(read_file, ws, path="bad.txt").content == "ok \ufffd\ufffd end"
    assert "empty" in call(read_file, ws, path="empty.txt").content
    if hasattr(os, "mkfifo"):  # reading a pipe would hang
        os.mkfifo(top / "pipe")
        assert "not a regular file" in call(read_file, ws, path="pipe").content


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failed_write_leaves_the_original_and_no_temp_file(ws, monkeypatch, failing):
    folder = Path(ws.cwd) / "a"
    (folder / "doc.txt").write_text("original")
    entries = sorted(os.listdir(folder))

    def boom(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, boom)
    result = call(write_file, ws, path="a/doc.txt", content="new content")
    monkeypatch.undo()
    assert result.status == "error" and "No space left" in result.content and "unchanged" in result.content
    assert (folder / "doc.txt").read_text() == "original"
    assert sorted(os.listdir(folder)) == entries
    assert undo(ws) == "nothing to undo"  # the failed write left no journal entry


def test_write_keeps_permission_bits_and_reports(ws):
    script = Path(ws.cwd) / "run.sh"
    script.write_text("echo 1\n")
    script.chmod(0o754)
    assert call(write_file, ws, path="run.sh", content="echo 2\n").content == "Overwrote run.sh (7 bytes)."
    assert stat.S_IMODE(script.stat().st_mode) == 0o754 and script.read_text() == "echo 2\n"
    assert call(write_file, ws, path="a", content="x").status == "error"  # a folder


def test_undo_after_create_edit_and_twice_in_a_row(ws):
    path = Path(ws.cwd) / "plan.txt"
    assert call(write_file, ws, path="plan.txt", content="step one\n").content.startswith("Created plan.txt")
    assert call(edit_file, ws, path="plan.txt", old_text="one", new_text="two").status == "success"
    assert path.read_text() == "step two\n"
    assert undo(ws).startswith(f"restored {path}")
    assert path.read_text() == "step one\n"
    assert undo(ws).startswith(f"removed {path}")
    assert not path.exists()
    assert undo(ws) == "nothing to undo"


def test_undo_restores_an_overwritten_file(ws):
    call(write_file, ws, path="notes.txt", content="replaced")
    undo(ws)
    assert (Path(ws.cwd) / "notes.txt").read_text() == "hello\n"


def test_undo_refuses_after_an_external_change_unless_forced(ws):
    path = Path(ws.cwd) / "notes.txt"
    call(edit_file, ws, path="notes.txt", old_text="hello", new_text="bye")
    path.write_text("the user's own change\n")
    with pytest.raises(UndoError, match="changed after the agent's edit_file"):
        undo(ws)
    assert path.read_text() == "the user's own change\n"
    assert undo(ws, force=True).startswith("restored")
    assert path.read_text() == "hello\n"
    assert undo(ws) == "nothing to undo"


def test_undo_is_not_confined_to_the_current_roots(ws, make_config):
    call(write_file, ws, path="notes.txt", content="changed")
    elsewhere = Context(home=ws.home, cwd=ws.cwd, config=str(make_config(
        {"tools": {"files": {"roots": [str(Path(ws.cwd).parent / "root2")]}}}, name="other.yaml")))
    assert undo(elsewhere).startswith("restored")
    assert (Path(ws.cwd) / "notes.txt").read_text() == "hello\n"


def test_undo_journal_keeps_the_last_n(ws, make_config):
    ctx = Context(home=ws.home, cwd=ws.cwd, config=str(make_config({"tools": {"files": {"undo_keep": 2}}})))
    for i in range(4):
        call(write_file, ctx, path="n.txt", content=str(i))
    undo(ctx), undo(ctx)
    assert (Path(ws.cwd) / "n.txt").read_text() == "1" and undo(ctx) == "nothing to undo"


def test_edit_requires_a_unique_exact_match(ws):
    path = Path(ws.cwd) / "code.py"
    path.write_text("x = 1\nx = 1\nx = 1\n    if ok:\n        go()\n")
    many = call(edit_file, ws, path="code.py", old_text="x = 1", new_text="x = 2")
    assert many.status == "error" and "3 times" in many.content and "replace_all" in many.content
    loose = call(edit_file, ws, path="code.py", old_text="if ok:\ngo()", new_text="pass")
    assert loose.status == "error" and "spaces and line breaks are ignored" in loose.content
    missing = call(edit_file, ws, path="code.py", old_text="nothing like it", new_text="x")
    assert missing.status == "error" and "not found" in missing.content and "ignored" not in missing.content
    assert call(edit_file, ws, path="code.py", old_text="", new_text="x").status == "error"
    assert call(edit_file, ws, path="code.py", old_text="go()", new_text="go()").status == "error"
    assert path.read_text() == "x = 1\nx = 1\nx = 1\n    if ok:\n        go()\n"
    assert call(edit_file, ws, path="code.py", old_text="x = 1", new_text="x = 2", replace_all=True).content \
        == "Edited code.py: replaced 3 occurrences."
    assert call(edit_file, ws, path="code.py", old_text="x = 2\n    if", new_text="y = 0\n    if").status == "success"
    assert path.read_text() == "x = 2\nx = 2\ny = 0\n    if ok:\n        go()\n"


def test_edit_keeps_windows_line_ends_and_refuses_what_it_would_damage(ws):
    top = Path(ws.cwd)
    (top / "win.txt").write_bytes(b"one\r\ntwo\r\nthree\r\n")
    assert call(edit_file, ws, path="win.txt", old_text="one\ntwo", new_text="1\n2").status == "success"
    assert (top / "win.txt").read_bytes() == b"1\r\n2\r\nthree\r\n"
    (top / "latin1.txt").write_bytes(b"caf\xe9")
    (top / "blob.bin").write_bytes(b"a\x00b")
    assert "not UTF-8" in call(edit_file, ws, path="latin1.txt", old_text="caf", new_text="x").content
    assert "binary" in call(edit_file, ws, path="blob.bin", old_text="a", new_text="x").content
    assert "No such file" in call(edit_file, ws, path="none.txt", old_text="a", new_text="x").content


def test_japanese_names_and_text(ws):
    text = "こんにちは、世界。\n日本語のメモです。\n"
    assert call(write_file, ws, path="日本語/メモ.txt", content=text).status == "success"
    assert call(read_file, ws, path="日本語/メモ.txt").content == text
    assert call(edit_file, ws, path="日本語/メモ.txt", old_text="世界", new_text="皆さん").status == "success"
    size = len(text.replace("世界", "皆さん").encode())
    assert f"メモ.txt  {size} bytes" in call(list_dir, ws, path="日本語").content
    assert undo(ws).startswith("restored") and call(read_file, ws, path="日本語/メモ.txt").content == text


def test_tools_declare_what_they_do():
    assert [t.name for t in TOOLS] == ["read_file", "write_file", "edit_file", "list_dir"]
    for tool in (read_file, list_dir):  # the registry adds "source"
        assert tool.metadata["untrusted"] is True and "acts" not in tool.metadata
    for tool in (write_file, edit_file):
        assert tool.metadata["acts"] == "write" and not tool.metadata.get("untrusted")
    assert "runtime" not in read_file.tool_call_schema.model_json_schema()["properties"]
