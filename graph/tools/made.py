"""Self-made tools (the spec's "dynamic tool generation"): `create_tool`, and the tools it made.

Owns: the `create_tool` tool (a valid, free name; code that passes `sandbox.check`; a test call that
succeeds), validating call arguments against the args schema, storing a tool (`<home>/tools/NAME.py`
+ `NAME.json`) and `load` (as LangChain tools that run in `sandbox.run`) / `listing` / `remove`.
Does not own: checking or running the code (sandbox.py), the registry that offers the tools
(tools/__init__.py), whether create_tool may run (the approval policy) or the CLI (agent.py).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from langchain_core.tools import BaseTool, StructuredTool, ToolException, tool
from langgraph.prebuilt import ToolRuntime

from graph.context import Context, of
from graph.tools import sandbox

NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_PY = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict,
       "null": type(None)}


def _fits(schema: dict, value) -> bool:
    if "anyOf" in schema:
        return any(_fits(s, value) for s in schema["anyOf"])
    if "enum" in schema:
        return value in schema["enum"]
    kind = schema.get("type")
    if kind is None:
        return True
    if not isinstance(value, _PY[kind]) or (isinstance(value, bool) and kind in ("integer", "number")):
        return False
    if kind == "array" and "items" in schema:
        return all(_fits(schema["items"], v) for v in value)
    if kind == "object" and "additionalProperties" in schema:
        return all(_fits(schema["additionalProperties"], v) for v in value.values())
    return True


def _kind(schema: dict) -> str:
    if "anyOf" in schema:
        return " or ".join(_kind(s) for s in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    return schema.get("type", "any value") + (f" of {_kind(schema['items'])}" if "items" in schema else "")


def _validate(name: str, schema: dict, args: dict) -> None:
    props = schema["properties"]
    problems = [f"unknown argument {k!r}" for k in args if k not in props]
    problems += [f"missing argument {k!r}" for k in schema.get("required", []) if k not in args]
    problems += [f"argument {k!r} must be {_kind(props[k])}, got {v!r:.80}"
                 for k, v in args.items() if k in props and not _fits(props[k], v)]
    if problems:
        raise ToolException(f"{name}: {'; '.join(problems)} (it takes: {', '.join(props) or 'no arguments'})")


def _folder(ctx: Context) -> Path:
    return Path(ctx.home) / "tools"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@tool
def create_tool(name: str, code: str, test_args: dict, runtime: ToolRuntime[Context]) -> str:
    """Write yourself a new tool in Python, kept for later (also after a restart). `code` defines one
    function called `name` (lowercase_snake_case) with typed parameters (str, int, float, bool,
    list[str], dict, Optional[...]), a return type and a docstring saying what it does. Imports only
    from standard modules like math, re, json, datetime, collections; no files, network, processes,
    eval/exec/open or dunder attributes. `test_args` are the arguments of a test call that must succeed.
    Creating an existing name replaces that tool."""
    ctx = of(runtime)
    from graph.tools import builtin

    if not NAME.fullmatch(name):
        raise ToolException(f"bad name {name!r}: use lowercase letters, digits and _, at most 40 characters")
    if name in {t.name for t in builtin()} | {"create_tool"}:
        raise ToolException(f"{name} is the name of a built-in tool; choose another name")
    made = ctx.settings.tools.made
    description, schema = sandbox.check(name, code, made.imports)
    _validate(name, schema, test_args)
    result = sandbox.run(name, code, test_args, imports=made.imports, timeout_s=made.timeout_s)
    folder = _folder(ctx)
    folder.mkdir(parents=True, exist_ok=True)
    existed = (folder / f"{name}.json").exists()
    meta = {"name": name, "description": description, "args_schema": schema, "test_args": test_args,
            "test_result": result[:2000], "created": datetime.now().astimezone().isoformat(timespec="seconds")}
    _write(folder / f"{name}.py", code)
    _write(folder / f"{name}.json", json.dumps(meta, ensure_ascii=False, indent=1))
    shown = json.dumps(test_args, ensure_ascii=False)
    return (f"{'Replaced the old' if existed else 'Created the'} tool {name}: {description}\n"
            f"Test call with {shown} returned: {result[:1000]}\nIt is saved and can be called from now on.")


create_tool.metadata = {"acts": "self"}
create_tool.handle_tool_error = True


def _as_tool(ctx: Context, name: str, code: str, description: str, schema: dict) -> BaseTool:
    def func(**kwargs) -> str:
        _validate(name, schema, kwargs)
        made = ctx.settings.tools.made
        return sandbox.run(name, code, kwargs, imports=made.imports, timeout_s=made.timeout_s)
    return StructuredTool.from_function(func=func, name=name, description=description or name, args_schema=schema,
                                        metadata={"source": "self-made"}, handle_tool_error=True)


def _stamp(path: Path) -> tuple:
    try:
        return path.name, path.stat().st_mtime_ns, path.stat().st_size
    except OSError:  # removed meanwhile
        return path.name, 0, -1


def load(ctx: Context, notify: Callable[[str], None] | None = None) -> list[BaseTool]:
    """The stored self-made tools; a broken one is skipped with one line to `notify`.
    Kept in the session's services (the tools hold its Context) until the folder (or the tools.made
    settings) change, so it is cheap to call every step."""
    folder, made = _folder(ctx), ctx.settings.tools.made
    files = sorted(p for p in (folder.iterdir() if folder.is_dir() else []) if p.suffix in (".py", ".json"))
    key = (tuple(_stamp(p) for p in files), made.timeout_s, tuple(made.imports))
    slot = f"made:{folder}"
    cached = ctx.services.peek(slot)
    if cached and cached[0] == key:
        return list(cached[1])
    tools = []
    for meta_path in (p for p in files if p.suffix == ".json" and not p.name.startswith(".")):
        name = meta_path.stem
        try:
            if not NAME.fullmatch(name):
                raise ValueError("not a valid tool name")
            if not isinstance(json.loads(meta_path.read_text(encoding="utf-8")), dict):
                raise TypeError("not a JSON object")
            code = (folder / f"{name}.py").read_text(encoding="utf-8")
            description, schema = sandbox.check(name, code, made.imports)
        except (OSError, ValueError, TypeError, ToolException) as exc:
            if notify:
                notify(f"self-made tool {name} skipped: {exc}")
            continue
        tools.append(_as_tool(ctx, name, code, description, schema))
    ctx.services.put(slot, (key, tools))
    return list(tools)


def listing(ctx: Context) -> list[dict]:
    """name, description and created time of every stored tool (for `agent.py tools`)."""
    rows = []
    for path in sorted(_folder(ctx).glob("*.json")):
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            rows.append({"name": path.stem, "description": str(meta["description"]), "created": str(meta["created"])})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            rows.append({"name": path.stem, "description": f"(broken: {exc})", "created": ""})
    return rows


def remove(ctx: Context, name: str) -> str:
    """Delete a self-made tool; ToolException if there is none by that name."""
    paths = [_folder(ctx) / f"{name}.py", _folder(ctx) / f"{name}.json"]
    if not NAME.fullmatch(name) or not any(p.exists() for p in paths):
        raise ToolException(f"no self-made tool named {name!r}; `agent.py tools` lists them")
    for path in paths:
        path.unlink(missing_ok=True)
    return f"removed the self-made tool {name}"
