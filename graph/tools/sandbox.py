"""Checking and running untrusted Python code (a self-made tool's), as defence in depth, not a perfect sandbox.

Owns: the static checks (`check`: the code parses, defines one typed function with a docstring, imports
only the allowed modules, touches no dangerous builtins, dunder or frame attributes; it returns the
description and args JSON schema) and running it (`run`: a `python -I -S` subprocess in a temp dir with
a minimal environment, a wall-clock timeout, on POSIX memory/CPU/file-size limits, a restricted
`__builtins__`, an import guard and a cap on the result's length). Expected failures raise ToolException.
Does not own: tool names, argument validation, storage in the data folder or LangChain tool objects
(made.py), nor whether code may run at all (the approval policy, `acts: "self"`).
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

from langchain_core.tools import ToolException

MEMORY_MB = 512
MAX_CHARS = 20000  # the longest result a self-made tool may return
MAX_CODE = 50000
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


def run(name: str, code: str, kwargs: dict, *, imports: list[str], timeout_s: float) -> str:
    """Run the function `name` defined by `code` with `kwargs` in a limited subprocess; its result as text."""
    request = {"source": code, "name": name, "kwargs": kwargs, "imports": imports, "banned": sorted(BANNED),
               "blocked": sorted(BLOCKED_ATTRS), "memory_mb": MEMORY_MB, "cpu_s": math.ceil(timeout_s) + 1,
               "max_chars": MAX_CHARS}
    env = {"PATH": os.defpath, **{k: os.environ[k] for k in ("SYSTEMROOT", "TZ") if k in os.environ}}
    with tempfile.TemporaryDirectory(prefix="made-") as cwd:
        try:
            proc = subprocess.run([sys.executable, "-I", "-S", "-c", RUNNER], input=json.dumps(request).encode(),
                                  check=False, capture_output=True, cwd=cwd, env=env, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise ToolException(f"{name} took longer than {timeout_s:g} s and was stopped") from None
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
