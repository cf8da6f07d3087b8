"""The live window: which messages the model sees, and which get folded into the summary.

Owns: laying out the prompt as [system prompt + summary][recent messages][per-turn
material], fitted to the context window with room for the answer (the system prompt is
never cut: the oldest messages go first, and a single message too long to fit loses its
middle), leaving out the exchanges whose answer the user complained about or rated bad
(`unrepeated`, for the embedded model) and the feedback said before a new request (`reworded`),
and choosing the turns to fold away when the window has grown past its share.
Does not own: counting tokens (the backend's tokenizer, llm.py), writing the summary
(llm.summarize) or the transcript (store.py).
"""

from __future__ import annotations

from collections.abc import Callable

from langchain_core.messages import BaseMessage, SystemMessage

from graph.models import prompts

OVERHEAD = 8  # tokens of chat-template markup around each message


def budget(context_window: int, reserve: int) -> int:
    """Tokens the prompt may take: the window less what the answer needs, yet never under a
    third of the window (a small window with a large answer reserve still gets a prompt)."""
    return max(context_window - reserve, context_window // 3)


def prompt(system: str, summary: str, messages: list[BaseMessage], extra: list[BaseMessage], budget: int,
           count: Callable[[str], int]) -> list[BaseMessage]:
    """The prompt, fitted to `budget` tokens."""
    head = SystemMessage(system + (prompts.SUMMARY.format(summary=summary) if summary else ""))
    room = budget - count(head.text) - sum(count(m.text) + OVERHEAD for m in extra) - OVERHEAD
    sizes = [count(m.text) + OVERHEAD for m in messages]
    start = 0
    while start < len(messages) - 1 and sum(sizes[start:]) > room:
        start += 1
    while start < len(messages) - 1 and messages[start].type != "human":
        start += 1  # never begin with a tool result or half of a tool exchange
    kept = [_without_reasoning(m) for m in messages[start:]]
    if kept and sum(sizes[start:]) > room:
        kept[-1] = _cut(kept[-1], room - sum(sizes[start:-1]), count)
    return [head, *kept, *extra]


def _without_reasoning(message: BaseMessage) -> BaseMessage:
    """Earlier answers go back without their reasoning (as DeepSeek recommends)."""
    if "reasoning_content" not in message.additional_kwargs:
        return message
    kwargs = {k: v for k, v in message.additional_kwargs.items() if k != "reasoning_content"}
    return message.model_copy(update={"additional_kwargs": kwargs})


def _cut(message: BaseMessage, room: int, count: Callable[[str], int]) -> BaseMessage:
    """Keep the beginning and the end of a message that alone is too long for the window."""
    text, keep = message.text, len(message.text) // 2
    while count(text) + OVERHEAD > room and keep > 50:  # `keep` shrinks every time: this ends
        keep = int(keep * 0.8)
        text = message.text[:keep] + prompts.CUT.format(n=len(message.text) - 2 * keep) + message.text[-keep:]
    return message.model_copy(update={"content": text})


def recent(messages: list[BaseMessage], turns: int) -> list[BaseMessage]:
    """The messages of the last `turns` exchanges before the newest user message, and everything
    after it. SmolLM2-135M copies earlier answers ("The largest planet in our solar system is
    Jupiter." for the next three questions): with one earlier exchange shown it answered 33 of
    tests/bench/bench_facts.py's 38 questions right, with three 27, with none 27 (and answers
    five times longer: the earlier short answers keep it short). The state keeps them all."""
    starts = [i for i, m in enumerate(messages) if m.type == "human"]
    return messages[starts[-1 - turns]:] if len(starts) > turns else messages


def foldable(messages: list[BaseMessage], keep_turns: int) -> list[BaseMessage]:
    """The messages before the last `keep_turns` turns (a turn starts at a user message)."""
    starts = [i for i, m in enumerate(messages) if m.type == "human"]
    if len(starts) <= keep_turns:
        return []
    return list(messages[: starts[-keep_turns]])


def unrepeated(messages: list[BaseMessage], unwanted: Callable[[BaseMessage, BaseMessage], bool]
               ) -> list[BaseMessage]:
    """`messages` without the turns (question, tool steps, answer) that `unwanted(question, the
    user's next message)` marks (a complaint, a /bad rating): a small model copies its earlier
    answers, the unwanted ones too. The whole exchange goes, as SmolLM2-135M derailed on a question
    left without its answer (two user messages in a row: it recited its system prompt in 2-3 of 4
    samples) and copied a placeholder answer ("(answer left out)": 4 of 4). The messages
    themselves (state, transcript) stay."""
    starts = [i for i, m in enumerate(messages) if m.type == "human"]
    hidden = {i for a, b in zip(starts, starts[1:]) if unwanted(messages[a], messages[b]) for i in range(a, b)}
    return [m for i, m in enumerate(messages) if i not in hidden]


def reworded(messages: list[BaseMessage], request: Callable[[str], str]) -> list[BaseMessage]:
    """`messages` with each user message as `request` words it (the feedback before a new request
    taken out, for the embedded model: feedback.request); the messages themselves stay."""
    return [m.model_copy(update={"content": text}) if m.type == "human" and (text := request(m.text)) != m.text
            else m for m in messages]
