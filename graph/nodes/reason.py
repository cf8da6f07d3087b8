"""`reason`: the model's step. Records new input in the transcript, decides whether to
think first (reasoning.mode; `auto` asks thinking.needs_thinking), lays out the prompt
(stable prefix first, fitted to the context window), streams thoughts and answer (or a
tool call) from the active backend, and records the result with its metrics.

Does not own: backend choice and fallback (llm.py), the window layout (window.py) or
running tools (act.py).
"""

from datetime import date

from langchain_core.messages import SystemMessage
from langgraph.runtime import Runtime

from graph import tools as registry
from graph.context import Context, of, writer
from graph.learning import feedback, guard, selfprompt, strategy
from graph.models import llm, prompts, serving, thinking, window
from graph.state import AgentState


def reason(state: AgentState, runtime: Runtime[Context]) -> dict:
    ctx = of(runtime)
    store = ctx.store
    messages = state["messages"]
    last_human = max((i for i, m in enumerate(messages) if m.type == "human"), default=-1)
    turn_of = ctx.parent_turn or (messages[last_human].id if last_human >= 0 else None)
    last_ai = max((i for i, m in enumerate(messages) if m.type == "ai"), default=-1)
    for message in messages[last_ai + 1:]:  # the user's message is saved before the model runs
        # a user message opens its turn, except a sub-agent's task, which joins its parent's
        store.append(message, turn_of=ctx.parent_turn if message.type == "human" else turn_of)
    rounds = sum(1 for m in messages[last_human + 1:] if m.type == "ai")
    write = writer(runtime)
    notify = lambda text: write({"notice": text})  # noqa: E731
    said = messages[last_human].text if last_human >= 0 else ""
    tools = registry.available(ctx, notify) if rounds < (ctx.max_rounds or ctx.settings.agent.max_tool_rounds) else []
    backend = llm.active(ctx)
    if backend.name == "embedded":  # the small model picks tools about itself for plain questions; Ollama
        # models choose well, and a tool list that changed per turn would break their cached prompt prefix
        tools = [t for t in tools if registry.asked_for(t, said)]
    version = selfprompt.current(ctx)
    where, arms = pick_strategy(ctx, store, said, messages[last_human + 1:], first=rounds == 0, small=backend.name == "embedded")
    if backend.name == "embedded" and where.startswith("ja") and rounds == 0 and not ctx.parent_turn and \
            (line := llm.cannot_answer_japanese(ctx, store)):
        notify(line)
    heeds = not ctx.parent_turn and ctx.settings.learning.feedback  # the user's feedback shapes this answer
    learns = heeds and learning_on(ctx, store)
    shaped = feedback.applied(store, said, learns) if heeds else feedback.Applied()
    if backend.name == "embedded" and where.startswith("ja") and \
            not any(feedback.preference(key).group == "language" for key in shaped.keys):
        # SmolLM2-135M cannot write Japanese (it garbles it, at length): it answers in English, as
        # llm.NO_JAPANESE tells the user, whether or not the user has asked for that yet
        shaped.instructions.append(feedback.preference("english").instruction)
    styled = "style" not in shaped.arms  # a length preference says it in the system prompt instead
    arms = {**arms, **shaped.arms}  # what the user's feedback asks for wins over the policy's sample
    # in the system prompt, not after the conversation, where SmolLM2-135M takes an instruction for the
    # question ("The answer is: ..."); standing preferences change rarely, so the prefix stays cached
    system = prompts.SYSTEM.format(system_prompt=feedback.placed(store, version.text, shaped),
                                   today=date.today().isoformat())
    mode = ctx.settings.reasoning.mode
    if mode == "auto" and arms["think"] != "auto":  # the learned policy decides only what the user left to auto
        mode = arms["think"]
    think = mode == "on" or (mode == "auto" and last_human >= 0 and thinking.needs_thinking(said))
    extra = recalled(ctx, said, backend.count_tokens, notify, touch=rounds == 0)
    extra += [SystemMessage(prompts.STYLES[arms["style"]])] if styled and arms["style"] in prompts.STYLES else []
    extra += [SystemMessage(prompts.THINK)] if think and backend.think_style != "native" else []
    reserve = ctx.settings.llm.max_tokens + (ctx.settings.reasoning.max_tokens if think else 0)
    reserve += backend.tools_tokens(tools)  # tool definitions travel with every request
    budget = window.budget(backend.context_window, reserve)
    seen = messages
    if backend.name == "embedded" and learns:  # SmolLM2 copies its earlier answers, the unwanted ones too, and
        # answers the feedback before a question instead of the question (the agent acts on the feedback itself)
        seen = window.reworded(window.unrepeated(messages, feedback.unwanted(store)), feedback.request)
    if backend.name == "embedded":  # ...and any earlier answer: it sees the last few exchanges only
        seen = window.recent(seen, ctx.settings.llm.embedded.history_turns)
    sent = window.prompt(system, state.get("summary", ""), seen, extra, budget, backend.count_tokens)
    answer, meta = llm.respond(ctx, sent, tools, notify=notify,
                               emit=lambda kind, text: write({kind: text}), think=think,
                               temperature=strategy.TEMPERATURES.get(arms["temperature"], sampling(ctx)),
                               max_tokens=shaped.max_tokens, form=shaped.form if shaped.forms else None)
    learned = {"strategy": arms, "bucket": where, "prompt_version": version.id}
    meta.update(learned)
    answer.response_metadata.update(learned)
    meta["context_tokens"] = sum(backend.count_tokens(m.text) + window.OVERHEAD for m in sent) + meta["tokens"]
    # the whole live window (before fitting), so compaction triggers even when fitting had to drop turns
    answer.response_metadata["window_tokens"] = meta["tokens"] + sum(
        backend.count_tokens(m.text) + window.OVERHEAD for m in [sent[0], *messages])
    answer.response_metadata["budget"] = budget
    if ctx.parent_turn:
        meta["agent"] = "sub-agent"
    store.append(answer, meta, turn_of=turn_of, closes=not ctx.parent_turn)
    return {"messages": [answer]}


def pick_strategy(ctx: Context, store, said: str, steps: list, first: bool, small: bool = False
             ) -> tuple[str, dict[str, str]]:
    """(context bucket, arms) for this answer: chosen by the learned policy at the turn's first
    step and kept for its tool rounds; the defaults for sub-agents or with learning.policy off.
    `small`: the embedded model, which explores the arms it cannot carry out well rarely."""
    if not first:
        for m in reversed(steps):
            if m.type == "ai" and m.response_metadata.get("strategy"):
                return m.response_metadata.get("bucket", ""), m.response_metadata["strategy"]
    where = strategy.bucket(said)
    if ctx.parent_turn or not (ctx.settings.learning.enabled and ctx.settings.learning.policy):
        return where, dict(strategy.DEFAULT)
    if guard.frozen(store):  # frozen: what was learned so far, without exploring further
        return where, strategy.best(store, where)
    return where, strategy.choose(store, where, barred=strategy.COSTLY if small else frozenset())


def learning_on(ctx: Context, store) -> bool:
    return ctx.settings.learning.enabled and not guard.frozen(store)


def sampling(ctx: Context) -> float | None:
    """The temperature of the "config" arm: an evolved one while the prompt version it was
    promoted with serves, else the configured one (None)."""
    return serving.evolved(ctx.store).get("temperature")


def recalled(ctx: Context, text: str, count, notify, touch: bool) -> list[SystemMessage]:
    """Long-term memories (and old turns that left the window) relevant to `text`, within
    `memory.recall_tokens`; nothing (and no embedder loaded) while there is nothing to recall."""
    settings = ctx.settings.memory
    if ctx.parent_turn or not (settings.enabled and settings.recall_k and text.strip()):
        return []
    if not ctx.store.has_memories():
        return []
    from graph.memory.memories import MemoryUnavailable, memories_of

    try:
        kept, past = memories_of(ctx).recall(text, turns=2, touch=touch)  # both over memory.min_similarity
        found = [m.text for m in kept] + [f"(earlier, turn {t['turn']}) {' '.join(t['text'].split())[:400]}"
                                          for t in past]
    except MemoryUnavailable as exc:
        notify(f"memory is unavailable: {exc}")
        return []
    lines, used = [], 0
    for item in found:
        line = f"- {item}"
        used += count(line) + 1
        if used > settings.recall_tokens:
            break
        lines.append(line)
    return [SystemMessage(prompts.MEMORIES.format(items="\n".join(lines)))] if lines else []
