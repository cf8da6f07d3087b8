"""Self-made tools (the spec's "dynamic tool generation"): `create_tool`, and the tools it made.

Owns: checking a tool's code (`check`: it parses, defines one typed function with a docstring,
imports only `tools.made.imports`, touches no dangerous builtins, dunder or frame attributes),
running it (`_run`: a `python -I -S` subprocess in a temp dir with a minimal environment, the
`tools.made.timeout_s` wall clock, on POSIX memory/CPU/file-size limits, a restricted
`__builtins__` and an import guard), storing it (`<home>/tools/NAME.py` + `NAME.json`) and
`load` / `listing` / `remove`. The checks plus the isolation are defence in depth, not a
perfect sandbox: the approval policy (`acts: "self"`) decides whether create_tool may run.
Does not own: the registry that offers the tools (tools/__init__.py) or the CLI (agent.py).
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from langchain_core.tools import BaseTool, StructuredTool, ToolException, tool
from langgraph.prebuilt import ToolRuntime

from graph.context import Context

MEMORY_MB = 512
MAX_CHARS = 20000  # the longest result a self-made tool may return
MAX_CODE = 50000
NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
BANNED = {"open", "exec", "eval", "compile", "__import__", "globals", "locals", "vars", "input", "breakpoint",
          "getattr", "setattr", "delattr", "memoryview", "help", "exit", "quit", "__loader__", "__spec__"}
# Attributes that reach frames, modules that allowed modules import (typing.sys, uuid.os, enum.bltns), or that
# evaluate strings or look attributes up by name; the runner also hides them and private names at run time.
BLOCKED_ATTRS = BANNED - {"compile", "input", "help"} | {
    "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "ag_frame", "ag_code", "f_back",
    "f_globals", "f_locals", "f_builtins", "f_code", "tb_frame", "tb_next", "co_code", "mro", "system", "popen",
    "sys", "os", "posix", "nt", "builtins", "bltns", "subprocess", "importlib", "ctypes", "socket", "shutil", "io",
    "pathlib", "signal", "threading", "multiprocessing", "gc", "inspect", "types", "marshal", "pickle", "tempfile",
    "resource", "mmap", "codecs", "attrgetter", "methodcaller", "get_type_hints", "ForwardRef",
    "evaluate_forward_ref", "Formatter", "get_field"}
DUNDER = re.compile(r"__[A-Za-z]\w*__")
_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "list": "array",
          "List": "array", "dict": "object", "Dict": "object"}
_PY = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict,
       "null": type(None)}

RUNNER = r'''
import builtins, json, sys
req = json.loads(sys.stdin.buffer.read().decode("utf-8"))
def send(reply):
    sys.__stdout__.write(json.dumps(reply)); sys.__stdout__.flush()
try:
    import resource
    def limit(kind, value):
        soft, hard = resource.getrlimit(kind)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(kind, (value, value))
    limit(resource.RLIMIT_AS, req["memory_mb"] << 20)
    limit(resource.RLIMIT_CPU, req["cpu_s"])
    limit(resource.RLIMIT_CORE, 0)
    limit(resource.RLIMIT_FSIZE, 1 << 20)
except ImportError:
    pass
def ok(module):
    return any(module == a or module.startswith(a + ".") for a in req["imports"])
def view(module, seen):
    """A copy of a module without private names, blocked names and modules that are not allowed (typing.sys)."""
    if module.__name__ not in seen:
        copy = seen[module.__name__] = type(sys)(module.__name__)
        for key, value in list(vars(module).items()):
            is_module = isinstance(value, type(sys))
            if not (key.startswith("_") or key in req["blocked"] or is_module and not ok(value.__name__)):
                setattr(copy, key, view(value, seen) if is_module else value)
    return seen[module.__name__]
def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and (ok(name) or (fromlist and all(ok(name + "." + f) for f in fromlist))):
        return view(builtins.__import__(name, globals, locals, fromlist, level), {})
    raise ImportError("import of " + name + " is not allowed")
class Sink:
    def write(self, text): return len(text)
    def flush(self): pass
safe = {k: v for k, v in vars(builtins).items() if k not in req["banned"]}
safe["__import__"] = guarded_import
try:
    module = {"__name__": "made_tool", "__builtins__": safe}
    sys.stdout = sys.stderr = Sink()
    exec(compile(req["source"], "<tool>", "exec"), module)
    result = module[req["name"]](**req["kwargs"])
    text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    if len(text) > req["max_chars"]:
        send({"error": "returned %d characters, more than the %d allowed; return a shorter result"
                       % (len(text), req["max_chars"])})
    else:
        send({"result": text})
except MemoryError:
    send({"error": "used more than %d MB of memory (MemoryError)" % req["memory_mb"]})
except BaseException as exc:
    import traceback
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<tool>"]
    if isinstance(exc, TypeError) and "JSON serializable" in str(exc):
        exc = TypeError("the result cannot be turned into JSON; return str, int, float, bool, list or dict")
    last = (type(exc).__name__ + ": " + str(exc)).strip().splitlines()[-1][:500]
    send({"error": last + (" (line %d)" % lines[-1] if lines else "")})
'''


def _allowed(module: str, imports: list[str]) -> bool:
    return any(module == a or module.startswith(a + ".") for a in imports)


def _literal(node: ast.expr | None) -> tuple[bool, object]:
    try:
        return node is not None, ast.literal_eval(node) if node is not None else None
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _schema(node: ast.expr) -> dict:
    """The JSON schema of a type annotation; ValueError for a type that is not JSON."""
    if isinstance(node, ast.Constant) and node.value is None:
        return {"type": "null"}
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return {"anyOf": [_schema(node.left), _schema(node.right)]}
    base = node.value if isinstance(node, ast.Subscript) else node
    name = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else ""
    if not isinstance(node, ast.Subscript):
        if name == "Any":
            return {}
        if name in _TYPES:
            return {"type": _TYPES[name]}
        raise ValueError(ast.unparse(node))
    args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
    if _TYPES.get(name) == "array" and len(args) == 1:
        return {"type": "array", "items": _schema(args[0])}
    if _TYPES.get(name) == "object" and len(args) == 2 and _schema(args[0]) == {"type": "string"}:
        return {"type": "object", "additionalProperties": _schema(args[1])}
    if name == "Optional" and len(args) == 1:
        return {"anyOf": [_schema(args[0]), {"type": "null"}]}
    if name == "Union":
        return {"anyOf": [_schema(a) for a in args]}
    if name == "Literal" and all(isinstance(a, ast.Constant) for a in args):
        return {"enum": [a.value for a in args]}
    raise ValueError(ast.unparse(node))


def _code_problems(tree: ast.Module, imports: list[str]) -> list[str]:
    problems = []
    for stmt in tree.body:
        constant = isinstance(stmt, (ast.Assign, ast.AnnAssign)) and _literal(stmt.value)[0]
        docstring = isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
        if not (constant or docstring or isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef))):
            problems.append(f"line {stmt.lineno}: only imports, functions, classes and constant assignments "
                            "may be at the top level")
    for node in ast.walk(tree):
        at = f"line {getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            problems += [f"{at}: import {a.name} is not allowed (allowed: {', '.join(imports)})"
                         for a in node.names if not _allowed(a.name, imports)]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                problems.append(f"{at}: relative imports are not allowed")
            for a in [] if node.level else node.names:
                if not (_allowed(mod, imports) or _allowed(f"{mod}.{a.name}", imports)):
                    problems.append(f"{at}: import from {mod} is not allowed (allowed: {', '.join(imports)})")
                elif a.name == "*" or a.name.startswith("_") or a.name in BLOCKED_ATTRS:
                    problems.append(f"{at}: `from {mod} import {a.name}` is not allowed; import public names")
        elif isinstance(node, ast.Name) and (node.id in BANNED or DUNDER.fullmatch(node.id)):
            problems.append(f"{at}: {node.id} is not allowed in a self-made tool")
        elif isinstance(node, (ast.Attribute, ast.MatchClass)):
            names = [node.attr] if isinstance(node, ast.Attribute) else node.kwd_attrs
            base = getattr(node, "value", None)
            own = isinstance(base, ast.Name) and base.id in ("self", "cls")
            problems += [f"{at}: the attribute .{n} is not allowed in a self-made tool" for n in names
                         if n in BLOCKED_ATTRS or n.startswith("__") or (n.startswith("_") and not own)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and DUNDER.search(node.value):
            problems.append(f"{at}: strings naming dunder attributes ({DUNDER.search(node.value)[0]}) are not allowed")
    return problems


def check(name: str, code: str, imports: list[str]) -> tuple[str, dict]:
    """Check a tool's code statically; (description, args JSON schema) or ToolException saying what to fix."""
    if len(code) > MAX_CODE:
        raise ToolException(f"the code is {len(code)} characters long; keep a tool under {MAX_CODE}")
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise ToolException(f"the code does not parse: {exc.msg} (line {exc.lineno})") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ToolException(f"the code does not parse: {exc}") from None
    problems = _code_problems(tree, imports)
    fn = next((s for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == name), None)
    if fn is None:
        problems.append(f"the code defines no top-level function named {name}")
    elif isinstance(fn, ast.AsyncFunctionDef):
        problems.append(f"{name} must be a plain `def`, not `async def`")
    if fn is None:
        raise ToolException("; ".join(list(dict.fromkeys(problems))[:6]))
    doc = ast.get_docstring(fn) or ""
    if not doc.strip():
        problems.append(f"{name} has no docstring; say in it what the tool does and when to use it")
    if fn.args.vararg or fn.args.kwarg:
        problems.append(f"{name} may not take *args or **kwargs; name every parameter")
    params = fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs
    defaults = [None] * (len(fn.args.posonlyargs + fn.args.args) - len(fn.args.defaults)) + fn.args.defaults
    props, required = {}, []
    for arg, default in zip(params, defaults + fn.args.kw_defaults):
        if arg.annotation is None:
            problems.append(f"parameter {arg.arg} has no type annotation (use str, int, float, bool, list, dict...)")
            continue
        try:
            props[arg.arg] = _schema(arg.annotation)
            if default is None:
                required.append(arg.arg)
            elif _literal(default)[0]:
                props[arg.arg]["default"] = _literal(default)[1]
            else:
                raise ValueError(f"the default {ast.unparse(default)}")
        except ValueError as exc:
            problems.append(f"parameter {arg.arg}: {exc} is not a JSON type or constant "
                            "(use str, int, float, bool, list[...], dict[str, ...], Optional[...], Literal[...])")
            continue
        said = re.search(rf"^\s*{arg.arg}\s*(\([^)]*\))?\s*:\s*(.+)$", doc, re.MULTILINE)
        if said:
            props[arg.arg]["description"] = said[2].strip()
    if fn.returns is None:
        problems.append(f"{name} has no return type (add -> str, -> dict, ...)")
    if problems:  # the first few, each once
        raise ToolException("; ".join(list(dict.fromkeys(problems))[:6]))
    description = " ".join(doc.strip().split("\n\n")[0].split())
    return description, {"type": "object", "properties": props, "required": required}


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


def _run(ctx: Context, name: str, code: str, kwargs: dict) -> str:
    """Run the tool `name` defined by `code` with `kwargs` in a limited subprocess; its result as text."""
    made = ctx.settings.tools.made
    request = {"source": code, "name": name, "kwargs": kwargs, "imports": made.imports, "banned": sorted(BANNED),
               "blocked": sorted(BLOCKED_ATTRS), "memory_mb": MEMORY_MB, "cpu_s": math.ceil(made.timeout_s) + 1,
               "max_chars": MAX_CHARS}
    env = {"PATH": os.defpath, **{k: os.environ[k] for k in ("SYSTEMROOT", "TZ") if k in os.environ}}
    with tempfile.TemporaryDirectory(prefix="made-") as cwd:
        try:
            proc = subprocess.run([sys.executable, "-I", "-S", "-c", RUNNER], input=json.dumps(request).encode(),
                                  check=False, capture_output=True, cwd=cwd, env=env, timeout=made.timeout_s)
        except subprocess.TimeoutExpired:
            raise ToolException(f"{name} took longer than {made.timeout_s:g} s and was stopped") from None
    try:
        reply = json.loads(proc.stdout.decode("utf-8", "replace") or "null")
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        why = f"killed by signal {-proc.returncode} (a resource limit)" if proc.returncode < 0 else \
            (lines[-1][:300] if lines else f"exit status {proc.returncode}")
        raise ToolException(f"{name} crashed: {why}")
    if "error" in reply:
        raise ToolException(f"{name} failed: {reply['error']}")
    return reply["result"]


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
    ctx = runtime.context or Context()
    from graph.tools import builtin

    if not NAME.fullmatch(name):
        raise ToolException(f"bad name {name!r}: use lowercase letters, digits and _, at most 40 characters")
    if name in {t.name for t in builtin()} | {"create_tool"}:
        raise ToolException(f"{name} is the name of a built-in tool; choose another name")
    description, schema = check(name, code, ctx.settings.tools.made.imports)
    _validate(name, schema, test_args)
    result = _run(ctx, name, code, test_args)
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
        return _run(ctx, name, code, kwargs)
    return StructuredTool.from_function(func=func, name=name, description=description or name, args_schema=schema,
                                        metadata={"source": "self-made"}, handle_tool_error=True)


_cache: dict[str, tuple[tuple, list[BaseTool]]] = {}


def _stamp(path: Path) -> tuple:
    try:
        return path.name, path.stat().st_mtime_ns, path.stat().st_size
    except OSError:  # removed meanwhile
        return path.name, 0, -1


def load(ctx: Context, notify: Callable[[str], None] | None = None) -> list[BaseTool]:
    """The stored self-made tools; a broken one is skipped with one line to `notify`.
    Cached until the folder (or the tools.made settings) change, so it is cheap to call every step."""
    folder, made = _folder(ctx), ctx.settings.tools.made
    files = sorted(p for p in (folder.iterdir() if folder.is_dir() else []) if p.suffix in (".py", ".json"))
    key = (tuple(_stamp(p) for p in files), made.timeout_s, tuple(made.imports))
    cached = _cache.get(str(folder))
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
            description, schema = check(name, code, made.imports)
        except (OSError, ValueError, TypeError, ToolException) as exc:
            if notify:
                notify(f"self-made tool {name} skipped: {exc}")
            continue
        tools.append(_as_tool(ctx, name, code, description, schema))
    _cache[str(folder)] = (key, tools)
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
