"""The embedded model's own process: llama.cpp runs in a child process, so that a native crash
(a bad kernel, model file or adapter) ends that process and not the agent.

Owns: starting the child (a fresh interpreter in a session of its own, so the terminal's
Ctrl-C goes to the agent only; connected by a multiprocessing.connection with a random key),
its loop (`serve`: load one model, then answer requests one at a time), the protocol (a
request is a tuple; a streamed answer comes back piece by piece and ends with "end"), stopping a generation at once (the child checks for "cancel" between
tokens; a child that does not stop in time is ended and started again on the next
request), noticing a crash (the pipe closes; the exit code names the signal), starting
the model again after a crash, and giving up on one that crashes again before it has
answered anything. Also `open_llama`, the one way this project constructs
`llama_cpp.Llama` (with or without llama.cpp's extra buffer types, cpu.py).
Does not own: the LangChain chat model and its prompts (embedded.py), or the choice of
extra buffer types (cpu.py).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from multiprocessing.connection import Client, Listener
from pathlib import Path
from typing import Any

from graph.models import cpu

CRASH_FILE = "AGENT_TEST_CRASH_FILE"  # tests only: a file holding N makes the next N answers crash (SIGSEGV)
CHILD = "AGENT_MODEL_PROCESS"  # the child's address, key and Spec (in its environment: readable by this user only)
ROOT = str(Path(__file__).resolve().parents[2])
START = f"import sys; sys.path.insert(0, {ROOT!r}); from graph.models.llama_process import main; main()"
LOAD_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 2.0  # a child still generating this long after "cancel" is ended


class ModelCrashed(Exception):
    """The model's process died (a native crash); the message is one line saying what happens next."""


class LoadFailed(Exception):
    """llama.cpp could not load the file (not a GGUF, wrong adapter...); the message says which."""


@dataclass(frozen=True)
class Spec:
    model_path: str
    n_ctx: int
    n_threads: int = 0
    lora_path: str = ""
    extra_buffers: bool = True


def open_llama(model_path: str, extra_buffers: bool | None = None, **kwargs):
    """`llama_cpp.Llama(model_path, **kwargs)` with llama.cpp's extra buffer types (weight
    repacking) on or off (None: as `auto` decides for this CPU, cpu.py). llama-cpp-python takes
    no argument for it and loads the model in its constructor, so its default-parameters
    function is swapped for the duration."""
    import llama_cpp.llama_cpp as native
    from llama_cpp import Llama

    if extra_buffers is None:
        extra_buffers = cpu.extra_buffers("auto")[0]

    original = native.llama_model_default_params

    def params():
        value = original()
        value.use_extra_bufts = extra_buffers
        return value

    with _open_lock:
        native.llama_model_default_params = params
        try:
            return Llama(model_path=model_path, **kwargs)
        finally:
            native.llama_model_default_params = original


_open_lock = threading.Lock()


# --- the child ---------------------------------------------------------------------------
def main() -> None:
    """The child's entry (START): connect to the parent, then serve it."""
    address, key, spec = json.loads(os.environ.pop(CHILD))
    conn = Client(address, authkey=bytes.fromhex(key))
    try:
        serve(conn, Spec(**spec))
    except (EOFError, OSError):
        pass  # the parent has gone


def serve(conn, spec: Spec) -> None:
    """The child's loop: load the model, say "ready" (or "error"), then answer requests until
    the parent closes the connection."""
    try:
        llama = open_llama(spec.model_path, spec.extra_buffers, n_ctx=spec.n_ctx,
                           n_threads=spec.n_threads or None, lora_path=spec.lora_path or None, verbose=False)
    except (ValueError, OSError) as exc:  # llama.cpp: "Failed to load model from file"
        conn.send(("error", str(exc)))
        return
    conn.send(("ready", {"pid": os.getpid(), "extra_buffers": bool(llama.model_params.use_extra_bufts)}))
    while True:
        op, args = conn.recv()
        if op == "cancel":
            continue  # arrived after its answer had already ended
        try:
            if op == "complete":
                _complete(conn, llama, **args)
                continue
            conn.send(("result", _OPS[op](llama, **args)))
        except (EOFError, OSError):
            raise  # the parent has gone
        except Exception as exc:  # a bad request (a prompt too long...): the parent raises it
            conn.send(("raise", (type(exc).__name__, str(exc))))


def _complete(conn, llama, chat: list[dict], prefill: str, **sampling) -> None:
    pieces = llama.create_completion(render(llama, chat) + prefill, stream=True, **sampling)
    finish = None  # "length": max_tokens stopped it; "stop": it ended by itself
    try:
        for n, part in enumerate(pieces):
            if conn.poll() and conn.recv()[0] == "cancel":
                break
            if n == 2:
                _crash_if_asked()
            finish = part["choices"][0].get("finish_reason") or finish
            conn.send(("piece", part["choices"][0]["text"]))
    finally:
        pieces.close()
    conn.send(("end", finish))


def render(llama, chat: list[dict]) -> str:
    """The model's own chat template (from the GGUF) applied to `chat`, ready for the answer."""
    formatter = getattr(llama, "formatter", None)
    if formatter is None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        piece = lambda token: llama.detokenize([token], special=True).decode("utf-8", "ignore")  # noqa: E731
        formatter = llama.formatter = Jinja2ChatFormatter(template=llama.metadata["tokenizer.chat_template"],
                                                          eos_token=piece(llama.token_eos()),
                                                          bos_token=piece(llama.token_bos()))
    return formatter(messages=chat).prompt


def _crash_if_asked() -> None:
    path = os.environ.get(CRASH_FILE)
    if not path or not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        left = int(f.read().strip() or 1) - 1
    if left > 0:
        with open(path, "w", encoding="utf-8") as f:
            f.write(str(left))
    else:
        os.remove(path)
    os.kill(os.getpid(), signal.SIGSEGV)


_OPS = {
    "chat": lambda llama, **args: llama.create_chat_completion(**args),
    "tokens": lambda llama, text: len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)),
    "reset": lambda llama: llama.reset(),
}


# --- the parent --------------------------------------------------------------------------
class LlamaProcess:
    """One model (file, context, threads, adapter, buffers) in its own process, started on
    first use. One request at a time: hold `lock` to keep several requests together."""

    def __init__(self, spec: Spec):
        self.spec = spec
        self.lock = threading.RLock()
        self.info: dict = {}
        self._process = None
        self._conn = None
        self._crashes = 0  # crashes since the model last answered
        self._given_up = ""
        self._counts: OrderedDict[str, int] = OrderedDict()
        self.finish_reason: str | None = None  # why the last stream ended

    # requests
    def request(self, op: str, **args) -> Any:
        with self.lock:
            self._send(op, args)
            kind, value = self._receive()
            return self._result(kind, value)

    def stream(self, chat: list[dict], prefill: str = "", **sampling) -> Iterator[str]:
        """The answer's pieces as they are generated; then `finish_reason` says why it ended
        ("length": max_tokens). Closing the iterator early stops the generation (at once; a
        child that does not stop in time is ended)."""
        with self.lock:
            self.finish_reason = None
            self._send("complete", {"chat": chat, "prefill": prefill, **sampling})
            try:
                while True:
                    kind, value = self._receive()
                    if kind == "end":
                        self._crashes = 0
                        self.finish_reason = value
                        return
                    if kind != "piece":
                        self._result(kind, value)  # raises what the child raised
                    yield value
            except GeneratorExit:  # the caller stopped reading: stop the generation
                self._cancel()
                raise

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` in the model's own tokenizer (remembered for the last few thousand texts)."""
        if text not in self._counts:
            self._counts[text] = self.request("tokens", text=text)
            if len(self._counts) > 4096:
                self._counts.popitem(last=False)
        return self._counts[text]

    def start_soon(self) -> None:
        """Start the process in the background (the REPL does, while the user types)."""
        threading.Thread(target=self._warm, daemon=True, name="agent-model-start").start()

    def _warm(self) -> None:
        with self.lock:
            if self._process is None and not self._given_up:
                try:
                    self._start()
                except (LoadFailed, ModelCrashed):
                    pass  # the first request tries again and says why

    def close(self) -> None:
        """End the process; the next request starts a new one, as if none had crashed."""
        with self.lock:
            self._end()
            self._crashes, self._given_up = 0, ""

    # the child
    def _send(self, op: str, args: dict) -> None:
        if self._given_up:
            raise ModelCrashed(self._given_up)
        if self._process is None or self._process.poll() is not None:
            self._start()
        try:
            self._conn.send((op, args))
        except OSError:
            raise self._crashed() from None

    def _start(self) -> None:
        self._end()
        key = secrets.token_bytes(16)
        with Listener(authkey=key) as listener:
            env = dict(os.environ, **{CHILD: json.dumps([listener.address, key.hex(), asdict(self.spec)])})
            own_group = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt" \
                else {"start_new_session": True}
            self._process = subprocess.Popen([sys.executable, "-c", START], env=env, stdin=subprocess.DEVNULL,
                                             **own_group)
            self._conn = mine = _accept(listener, key, self._process)
        if mine is None:
            raise self._crashed(loading=True)
        if not mine.poll(LOAD_TIMEOUT_S):
            self._end()
            raise LoadFailed(f"{self.spec.model_path}: the embedded model did not load in {LOAD_TIMEOUT_S:.0f} s")
        kind, value = self._receive(loading=True)
        if kind == "error":
            self._end()
            adapter = f" + {self.spec.lora_path}" if self.spec.lora_path else ""
            raise LoadFailed(f"{self.spec.model_path}{adapter}: not a usable GGUF model ({value})")
        self.info = value

    def _receive(self, loading: bool = False) -> tuple[str, Any]:
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            raise self._crashed(loading) from None
        except BaseException:  # interrupted inside a message (a second Ctrl-C): out of step, start afresh
            self._end()
            raise

    def _result(self, kind: str, value: Any) -> Any:
        if kind == "raise":
            name, text = value
            raise (ValueError if name == "ValueError" else RuntimeError)(text)
        self._crashes = 0
        return value

    def _cancel(self) -> None:
        """Ask the child to stop and wait for its "end"; end it when it does not come in time."""
        if self._conn is None:
            return
        try:
            self._conn.send(("cancel", None))
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while self._conn.poll(max(0.0, deadline - time.monotonic())):
                if self._conn.recv()[0] == "end":
                    return
        except (EOFError, OSError):  # it crashed meanwhile: started afresh on the next request
            pass
        except BaseException:  # a second Ctrl-C while waiting: start afresh next time
            self._end()
            raise
        self._end()

    def _crashed(self, loading: bool = False) -> ModelCrashed:
        process, self._process = self._process, None
        try:
            code = process.wait(5)
        except subprocess.TimeoutExpired:  # the connection broke but the process lives on: end it
            process.kill()
            code = process.wait()
        self._end()
        self._crashes += 1
        how = _how(code)
        when = " while loading" if loading else ""
        if self._crashes >= 2:
            fix = ("llama.cpp was built for another CPU: reinstall it here with `pip install --force-reinstall "
                   "--no-cache-dir llama-cpp-python==0.3.36`" if code == -getattr(signal, "SIGILL", 4) else
                   "try `llm.embedded.extra_buffers: off` in config.yaml, or report it with the output of "
                   "`agent.py status --json`")
            self._given_up = f"the embedded model crashed again{when} ({how}) right after a restart, so it is not " \
                             f"restarted; {fix}"
            return ModelCrashed(self._given_up)
        return ModelCrashed(f"the embedded model crashed{when} ({how}); it restarts with the next request")

    def _end(self) -> None:
        process, conn, self._process, self._conn = self._process, self._conn, None, None
        if conn is not None:
            conn.close()  # the child sees the pipe close and leaves
        if process is not None:
            try:
                process.wait(1)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _how(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"{signal.Signals(-code).name}, signal {-code}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _accept(listener: Listener, key: bytes, process: subprocess.Popen):
    """The child's connection, or None when it died before it connected."""
    got: list = []
    waiter = threading.Thread(target=lambda: got.append(listener.accept()), daemon=True)
    waiter.start()
    while waiter.is_alive():
        waiter.join(0.05)
        if waiter.is_alive() and process.poll() is not None:  # wake the accept up; never wait on it
            threading.Thread(target=lambda: Client(listener.address, authkey=key).close(), daemon=True).start()
            waiter.join(1)
            for conn in got:
                conn.close()
            return None
    return got[0] if got else None  # nothing: it died during the handshake
