"""Chat-model backends and the fallback chain: Ollama first, the embedded model when it is not there.

Owns: probing Ollama (reachable? model pulled?), building `ChatOllama` with explicit
`num_ctx`/`keep_alive`, building the embedded model, the session's active backend (kept in
its services' "backend:…" slots; one put in the "backend" slot, a test's scripted model,
answers instead), falling back with one clear notice, and `respond()`: one streamed model call with
latency/speed metrics, user stop (Ctrl-C: the session's stop signal), and a backend dying
mid-answer (the partial answer is kept and marked).
Does not own: the llama.cpp chat model itself (embedded.py) or prompt assembly (prompts.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, message_chunk_to_message

from graph.config import Settings
from graph.context import Context
from graph.models import adapters, ollama_client, vram
from graph.models.embedded import DEFAULT_LABEL, EmbeddedChat, EmbeddedModelMissing, model_file
from graph.models.llama_process import ModelCrashed

NO_JAPANESE = ("内蔵モデル（{model}）は日本語で答えられないため、英語で答えます。日本語で話すには Ollama（https://ollama.com）を入れて "
               "`ollama pull {ollama}` を実行し、agent.py を起動し直してください。")
NO_JAPANESE_EVERY_S = 24 * 3600  # said at most once a day, however many Japanese messages


class BackendError(Exception):
    """No usable model; the message is one clear line saying what was tried and how to fix it."""


@dataclass
class Backend:
    name: str  # "ollama" | "embedded"
    model: str  # what the user knows the model as
    chat: BaseChatModel
    context_window: int  # tokens the model can see at once (num_ctx / n_ctx)
    # How the model is made to think: "native" (a thinking model: Ollama `think`), "prefill"
    # (the answer is started with <think>, for the embedded model) or "prompt" (asked to).
    think_style: str = "prompt"
    notice: str = ""  # why this backend was chosen over the configured one, if it was
    announced: bool = False  # the notice was shown to the user
    plan: vram.Plan | None = None  # Ollama: the VRAM plan behind num_ctx (its warnings and advice, for status)

    def count_tokens(self, text: str) -> int:
        """Tokens of `text`: exact with the embedded model's own tokenizer; for Ollama, which has
        no tokenize endpoint, an upper bound (UTF-8 bytes / 3: ~1 token per Japanese character,
        ~4 English characters per token)."""
        if isinstance(self.chat, EmbeddedChat):
            return self.chat.count_tokens(text)
        return -(-len(text.encode("utf-8")) // 3)

    def warm(self) -> None:
        """Start loading the model in the background: the embedded model's process (the REPL
        calls this while the user types); Ollama loads its model by itself."""
        if isinstance(self.chat, EmbeddedChat):
            try:
                self.chat.process.start_soon()
            except EmbeddedModelMissing:
                pass  # the first answer says so

    def tools_tokens(self, tools: list) -> int:
        """Prompt tokens the tool definitions take: their JSON schemas for a model with native
        tool calling; the embedded model sees only names and first sentences (embedded.py)."""
        if not tools:
            return 0
        from langchain_core.utils.function_calling import convert_to_openai_tool

        from graph.models.embedded import tool_listing

        specs = [convert_to_openai_tool(t) for t in tools]
        text = tool_listing(specs) if isinstance(self.chat, EmbeddedChat) else json.dumps(specs, ensure_ascii=False)
        return self.count_tokens(text)


def probe_ollama(settings: Settings) -> str:
    """'' when Ollama answers and has the model; otherwise what is wrong and how to fix it."""
    o = settings.llm.ollama
    try:
        names = {m.model for m in ollama_client.client(settings).list().models}
    except ollama_client.ERRORS as exc:
        return (f"Ollama is not reachable at {o.base_url} ({ollama_client.reason(exc)}); start it with `ollama serve` "
                "or set llm.ollama.base_url in config.yaml (or OLLAMA_HOST)")
    if o.model not in names and f"{o.model}:latest" not in names:
        return f"Ollama has no model '{o.model}'; run `ollama pull {o.model}` or set llm.ollama.model in config.yaml"
    return ""


def ollama_backend(settings: Settings, lora: str = "", strict: bool = False) -> Backend:
    """ChatOllama on llm.ollama.model, or on the Ollama model serving the LoRA adapter `lora` (made
    when missing; without it, and a notice, when it cannot be; `strict`: AdapterError instead)."""
    from langchain_ollama import ChatOllama

    o = settings.llm.ollama
    served, dropped = o.model, ""
    if lora:
        try:
            served = adapters.ollama_model(settings, lora)
        except adapters.AdapterError as exc:
            if strict:
                raise
            dropped = f"{exc}; answering without it"
    try:
        thinks = "thinking" in (ollama_client.client(settings).show(o.model).capabilities or [])
    except ollama_client.ERRORS:
        thinks = False
    plan = vram.ollama_plan(settings)  # auto: the largest num_ctx that fits the free VRAM; a number: checked
    num_ctx = plan.num_ctx if o.num_ctx == "auto" else o.num_ctx
    chat = ChatOllama(model=served, base_url=o.base_url, num_ctx=num_ctx, keep_alive=o.keep_alive,
                      temperature=settings.llm.temperature, num_predict=settings.llm.max_tokens,
                      client_kwargs={"timeout": httpx.Timeout(o.read_timeout_s, connect=o.connect_timeout_s)})
    label = o.model + (" + evolved LoRA" if served != o.model else "")
    notice = "; ".join(filter(None, [dropped, "" if plan.fits else plan.reason]))  # warn before a spill to the CPU
    return Backend("ollama", label, chat, num_ctx, "native" if thinks else "prompt", plan=plan, notice=notice)


def embedded_backend(settings: Settings, lora: str = "", strict: bool = False) -> Backend:
    """The embedded model, with the LoRA adapter `lora` when it was made for its weights (without
    it, and a notice, when not; `strict`: AdapterError instead)."""
    e = settings.llm.embedded
    try:
        path = model_file(e.model_path)
    except EmbeddedModelMissing as exc:
        raise BackendError(str(exc)) from None
    if not path.is_file():
        raise BackendError(f"{path}: no such GGUF model file (llm.embedded.model_path in config.yaml)")
    why = adapters.problem(lora, path, path.name) if lora else ""
    if why and strict:
        raise adapters.AdapterError(why)
    lora, dropped = ("", f"{why}; answering without it") if why else (lora, "")
    label = (path.name if e.model_path else DEFAULT_LABEL) + (" + evolved LoRA" if lora else "")
    chat = EmbeddedChat(model_path=str(path), n_ctx=e.n_ctx, n_threads=e.n_threads, lora_path=lora,
                        extra_buffers=e.extra_buffers, temperature=settings.llm.temperature, max_tokens=settings.llm.max_tokens)
    return Backend("embedded", label, chat, e.n_ctx, "prefill", notice=dropped)


def resolve(settings: Settings, lora: str = "") -> Backend:
    """The backend config.yaml asks for, or the embedded one with a notice when Ollama is unusable.
    `lora`: the evolved adapter serving now (on whichever model it was made for)."""
    choice = settings.llm.backend
    if choice == "embedded":
        return embedded_backend(settings, lora)
    problem = probe_ollama(settings)
    if not problem:
        return ollama_backend(settings, lora)
    if choice == "ollama":
        raise BackendError(problem + " (--backend ollama does not fall back)")
    backend = embedded_backend(settings, lora)
    backend.notice = "; ".join(filter(None, [f"{problem}. Using the embedded model {backend.model} meanwhile",
                                             backend.notice]))
    return backend


def cannot_answer_japanese(ctx: Context, store) -> str:
    """The line, in Japanese, that tells a user writing Japanese to the embedded model that it
    cannot answer in Japanese and how to get Ollama with Qwen2; "" when said in the last day."""
    now = time.time()
    if now - float(store.get_meta("no_japanese_said") or 0) < NO_JAPANESE_EVERY_S:
        return ""
    store.set_meta("no_japanese_said", now)
    return NO_JAPANESE.format(model=active(ctx).model, ollama=ctx.settings.llm.ollama.model)


def _slot(ctx: Context, lora: str) -> str:
    """The services' slot of the backend for ctx's model settings and the adapter `lora`."""
    return f"backend:{lora}:{ctx.settings.llm.model_dump_json()}"


def _adapter(ctx: Context) -> str:
    """The evolved LoRA adapter attached to the prompt version serving now ('' for none): a
    promotion or rollback in another process (a background evolution run) shows on the next turn."""
    from graph.models import serving

    return serving.evolved(ctx.store).get("lora", "") if ctx.home else ""


def active(ctx: Context) -> Backend:
    """The backend the session talks to: the one put in its "backend" slot (a test's model), else
    the one resolved for its settings and adapter (once, then kept until a fallback)."""
    if (put := ctx.services.peek("backend")) is not None:
        return put
    lora = _adapter(ctx)
    return ctx.services.get(_slot(ctx, lora), lambda: resolve(ctx.settings, lora))


def adapted(ctx: Context, lora: str) -> Backend:
    """The active backend's model with a LoRA adapter (an evolved variant being scored), kept per
    adapter. AdapterError when the adapter cannot be served there."""
    kind = active(ctx).name
    build = ollama_backend if kind == "ollama" else embedded_backend
    slot = f"adapted:{kind}:{lora}:{ctx.settings.llm.model_dump_json()}"
    return ctx.services.get(slot, lambda: build(ctx.settings, lora, strict=True))


def fall_back(ctx: Context, why: str) -> Backend:
    """Answer with the embedded model from now on (Ollama failed), for this session's next turns too."""
    lora = _adapter(ctx)
    slot = "backend" if ctx.services.peek("backend") is not None else _slot(ctx, lora)
    with ctx.services.lock(slot):
        backend = embedded_backend(ctx.settings, lora)
        backend.notice = why
        ctx.services.put(slot, backend)
        return backend


def backend_errors() -> tuple[type[BaseException], ...]:
    from ollama import ResponseError

    # JSON: not an Ollama answer; BackendError: no usable model at all; ModelCrashed: the embedded model's process died
    return (httpx.HTTPError, ConnectionError, ResponseError, json.JSONDecodeError, BackendError, ModelCrashed)


def summarize(ctx: Context, previous: str, messages: list[BaseMessage]) -> tuple[str, int]:
    """Fold the oldest of `messages` into the running summary with the active model (the embedded
    one keeps the user's requests instead: requests()). Returns the new summary and how many messages
    (from the start) it covers: as many as fit the model's context next to the summary; the rest
    wait for the next fold."""
    from graph.models import prompts

    backend = active(ctx)
    limit = min(ctx.settings.session.summary_tokens, backend.context_window // 4)
    if backend.name == "embedded":  # SmolLM2-135M does not summarize: it loops, or copies the "(none)" of an
        # empty summary, and a fold took it 15-25 s on 2 cores (bench_feedback); it keeps the user's requests
        return requests(previous, messages, limit, backend.count_tokens), len(messages)
    # the request's room: the window less llm.max_tokens (at least the summary's limit), the summary so far
    # and the instructions
    room = backend.context_window - ctx.settings.llm.max_tokens - backend.count_tokens(previous) - 200
    lines: list[str] = []
    cap = min(2000, max(120, 3 * room // max(1, len(messages))))  # each message's share of the room, in characters
    for m in messages:
        line = prompts.SUMMARY_LINE.get(m.type, "{text}").format(name=m.name, text=" ".join(m.text.split())[:cap])
        room -= backend.count_tokens(line) + 1
        if room < 0:
            break
        lines.append(line)
    if not lines and messages:  # a tiny window: fold the oldest message, shortened, rather than never
        m = messages[0]
        lines = [prompts.SUMMARY_LINE.get(m.type, "{text}").format(name=m.name, text=" ".join(m.text.split())[:400])]
    if not lines:
        return previous, 0
    ask = prompts.SUMMARIZE.format(previous=previous or "(none)", messages="\n".join(lines), limit=limit)
    no_thinking = {"reasoning": False} if backend.think_style == "native" else {}  # a summary, not thoughts
    # generated within the limit: what a model writes past it is cut anyway
    text = tuned(backend.chat, max_tokens=limit).invoke([HumanMessage(ask)], **no_thinking).text.strip()
    return (within(text, limit, backend.count_tokens) or previous), len(lines)  # (counted in another tokenizer)


def requests(previous: str, messages: list[BaseMessage], limit: int, count: Callable[[str], int]) -> str:
    """A running summary without a model: the earlier one's lines, then one line per request of the
    user in `messages`; the oldest lines leave first to stay within `limit` tokens."""
    lines = [line for line in previous.splitlines() if line.strip()]
    lines += [f"- The user asked: {' '.join(m.text.split())[:200]}"
              for m in messages if m.type == "human" and m.text.strip()]
    while len(lines) > 1 and count("\n".join(lines)) > limit:
        lines.pop(0)
    return within("\n".join(lines), limit, count)  # one line longer than the whole summary may be


def within(text: str, limit: int, count: Callable[[str], int]) -> str:
    """`text` cut at its end until it counts at most `limit` tokens."""
    while text and count(text) > limit:
        text = text[: int(len(text) * 0.9)]
    return text


def structured(ctx: Context, prompt: str, schema: dict, max_tokens: int | None = None) -> dict | None:
    """The active model's answer to `prompt` as a JSON object fitting `schema`: grammar-constrained
    on the embedded model, Ollama's structured output (`format`) otherwise; given room for at
    least `max_tokens` (and never less than llm.max_tokens; JSON cut short is no answer). None when the model gives nothing
    usable or the backend fails: callers treat it as best effort."""
    backend = active(ctx)
    limit = max(max_tokens or 0, ctx.settings.llm.max_tokens)
    if isinstance(backend.chat, EmbeddedChat):
        try:
            return backend.chat.structured(prompt, schema, limit)
        except ModelCrashed:  # best effort; the next request starts the model again
            return None
    no_thinking = {"reasoning": False} if backend.think_style == "native" else {}
    try:
        chat = backend.chat.model_copy(update={"num_predict": limit})
        text = chat.invoke([HumanMessage(prompt)], format=schema, **no_thinking).text
        value = json.loads(text)
    except (*backend_errors(), ValueError):
        return None
    return value if isinstance(value, dict) else None


def _refit(messages: list[BaseMessage], backend: Backend, ctx: Context) -> list[BaseMessage]:
    """A prompt (system message first) fitted again, for another backend or a longer tail."""
    from graph.models import window

    budget = window.budget(backend.context_window, ctx.settings.llm.max_tokens)
    return window.prompt(messages[0].text, "", messages[1:], [], budget, backend.count_tokens)


def tuned(chat: BaseChatModel, temperature: float | None = None, max_tokens: int | None = None) -> BaseChatModel:
    """`chat` with another temperature and/or answer length limit (whatever the backend calls it)."""
    fields = type(chat).model_fields
    update = {"temperature": temperature} if temperature is not None and "temperature" in fields else {}
    if max_tokens:
        update.update({name: max_tokens for name in ("max_tokens", "num_predict") if name in fields})
    return chat.model_copy(update=update) if update else chat


def respond(ctx: Context, messages: list[BaseMessage], tools: list, notify: Callable[[str], None],
            emit: Callable[[str, str], None] | None = None, think: bool = False, forced: bool = False,
            temperature: float | None = None, max_tokens: int | None = None,
            form: Callable[[str], str] | None = None) -> tuple[AIMessage, dict]:
    """Stream one answer from the active backend; `emit(kind, text)` gets each piece as it
    comes ("think" or "answer"). With `think`, a thinking model thinks natively; other models
    were asked for <think> by the caller and their text is parsed. Returns the message
    (answer as content, thoughts in `reasoning_content`) and its metrics: backend, model,
    ttft_s, tokens, tok_s, seconds, thought_s/thought_tokens/reasoning (its quality) when it
    thought, and `interrupted` when it was cut short. `temperature` overrides the configured one
    for this answer (the learned policy's choice), `max_tokens` the answer's length limit (the
    short preference's, the evolution's short answers): an answer it stops ends at its last
    complete sentence (sentences.py), shown sentence by sentence. `form` reshapes the answer as it is
    shown (a format the user asked for: formats.py), sentence by sentence too. An embedded model's answer
    that goes round in a loop (its last 60 characters three times over, outside code) is stopped there.
    `forced` marks the one
    call that asks for the answer after cut reasoning: it is never cut or forced again."""
    from graph.models import prompts, sentences, thinking

    shows = emit or (lambda kind, text: None)  # the caller's; the calls below wrap it again
    held = sentences.Held(shows, form) if max_tokens or form else None
    emit = held or shows
    backend = active(ctx)
    if backend.notice and not backend.announced:
        notify(backend.notice)
        backend.announced = True
    chat = tuned(backend.chat, temperature, max_tokens)
    model = chat.bind_tools(tools) if tools else chat
    trace = thinking.Trace(parse=backend.think_style != "native", budget_tokens=ctx.settings.reasoning.max_tokens)
    start, first, chunks, interrupted, pieces, looped = time.perf_counter(), None, [], "", 0, False
    stream = model.stream(messages, **({"reasoning": think} if backend.think_style != "prompt" else {}))
    try:
        for chunk in stream:
            if first is None and (chunk.content or chunk.tool_call_chunks or chunk.additional_kwargs):
                first = time.perf_counter()
            pieces += bool(chunk.content or chunk.additional_kwargs.get("reasoning_content"))
            chunks.append(chunk)  # merged once at the end: adding each to the last costs O(n) per token
            for kind, text in trace.feed(chunk):
                emit(kind, text)
            if ctx.stop.is_set():
                interrupted = "stopped by the user"  # and no tool call runs: the user said stop
                break
            if trace.cut and not forced:
                break
            if backend.name == "embedded" and pieces % 16 == 0 and \
                    (so_far := trace.answer_text).count("```") % 2 == 0 and thinking.looping(so_far[-800:]):
                looped = True  # SmolLM2 repeats a sentence, outside code, until llm.max_tokens (512: 30-60 s)
                break
    except backend_errors() as exc:
        why = f"{backend.name} failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        if chunks and (trace.answer or trace.thoughts):
            interrupted = why
            notify(f"{why}. The partial answer is kept; send your message again to retry.")
        elif backend.name == "ollama" and ctx.settings.llm.backend == "auto":
            notify(f"{why}. Answering with the embedded model from now on.")
            embedded = fall_back(ctx, why)
            embedded.announced = True
            return respond(ctx, _refit(messages, embedded, ctx), tools, notify, shows, think, forced, temperature,
                           max_tokens, form)
        else:
            raise BackendError(f"{why}. Your message is saved; send it again when the backend is back.") from None
    finally:
        stream.close()
    for kind, text in trace.finish():
        emit(kind, text)
    message = message_chunk_to_message(chunks[0] + chunks[1:]) if chunks else AIMessage(content="")
    stopped = (looped or bool(max_tokens) and sentences.budget_stopped(message.response_metadata)) and not interrupted
    shown = held.finish(stopped) if held else ""
    end = time.perf_counter()
    usage = getattr(message, "usage_metadata", None) or {}
    tokens = usage.get("output_tokens") or pieces  # a streamed piece is one token on both backends
    gen_time = end - (first or end)
    meta = {"backend": backend.name, "model": backend.model, "seconds": round(end - start, 3),
            "ttft_s": round((first or end) - start, 3), "tokens": tokens,
            "tok_s": round((tokens - 1) / gen_time, 1) if gen_time > 0 and tokens > 1 else None}
    answer = shown if held else trace.answer_text
    if trace.thoughts and not answer.strip() and not message.tool_calls and not interrupted:
        trace.cut = trace.cut or "the reasoning ended without an answer"
    if trace.cut and not interrupted and not forced:  # degenerate reasoning: cut it, the answer still arrives
        notify(f"{trace.cut}; asking for the answer now.")
        ask = HumanMessage(prompts.FORCE_ANSWER.format(thoughts=trace.thought_text[-backend.context_window:]))
        plain = [m for m in messages if not (m.type == "system" and m.text == prompts.THINK)]
        reply, reply_meta = respond(ctx, _refit([*plain, ask], backend, ctx), [], notify, shows, think=False,
                                    forced=True, max_tokens=max_tokens, form=form)  # the answer's budget too
        answer, meta["seconds"] = reply.text, round(time.perf_counter() - start, 3)
        meta["tokens"] += reply_meta["tokens"]
        interrupted = reply_meta.get("interrupted", "")
        message.tool_calls = []
    message.content = answer
    if trace.thoughts:
        message.additional_kwargs["reasoning_content"] = trace.thought_text
        meta.update(thought_s=trace.thought_seconds(), thought_tokens=trace.thought_tokens,
                    reasoning=thinking.score(trace.thought_text, answer, trace.budget, trace.thought_tokens,
                                             trace.cut))
    if looped:
        meta["looped"] = True
    if interrupted:
        meta["interrupted"] = interrupted
        message.response_metadata["interrupted"] = interrupted
        message.tool_calls = []
    return message, meta
