"""Tool choice of the embedded model (SmolLM2-135M) among the built-in tools, with and
without the lexical shortlist (embedded.shortlist), on 20 labelled messages.

    python tests/bench/bench_tools.py

Prints each message with the expected and chosen tool in both modes, the accuracy of each,
and the median time of one decision. Greedy decoding, so the numbers repeat.
"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from langchain_core.utils.function_calling import convert_to_openai_tool  # noqa: E402

from graph import tools  # noqa: E402
from graph.models import embedded  # noqa: E402

CASES = [
    ("What time is it now?", "current_time"), ("What day is it today?", "current_time"),
    ("Tell me the current date.", "current_time"),
    ("Search the web for the latest Python release.", "web_search"),
    ("Look up news about the Tokyo marathon online.", "web_search"),
    ("Open https://example.com and tell me what it says.", "fetch_url"),
    ("Read the page at https://docs.python.org/3/ for me.", "fetch_url"),
    ("List the files in this folder.", "list_dir"), ("What is in the src directory?", "list_dir"),
    ("Show me the contents of README.md", "read_file"), ("Read the file notes.txt", "read_file"),
    ("Create a file hello.txt that says hi.", "write_file"),
    ("In config.py replace DEBUG = True with DEBUG = False.", "edit_file"),
    ("Run the command `ls -la`.", "run_command"), ("Run the tests with pytest.", "run_command"),
    ("Hello! How are you?", "none"), ("What is the capital of France?", "none"),
    ("Write a haiku about the sea.", "none"), ("Thanks, that was helpful.", "none"),
    ("Explain what a neural network is.", "none"),
]


def run(chat, specs, label: str) -> None:
    right, seconds = 0, []
    for message, want in CASES:
        start = time.perf_counter()
        call = chat._decide(chat.process, [{"role": "system", "content": "You are a helpful assistant."},
                                           {"role": "user", "content": message}], specs, False)
        seconds.append(time.perf_counter() - start)
        got = call["name"] if call else "none"
        right += got == want
        print(f"  {'ok ' if got == want else 'BAD'} {want:13} → {got:13} {message}")
    print(f"{label}: {right}/{len(CASES)} right, median decision {statistics.median(seconds) * 1000:.0f} ms\n")


def main() -> None:
    chat = embedded.EmbeddedChat(model_path=str(embedded.default_model_path()), n_ctx=4096)
    specs = [convert_to_openai_tool(t) for t in tools.builtin()]
    run(chat, specs, f"shortlist (top {embedded.shortlist.__defaults__[0]})")
    embedded.shortlist = lambda message, tools, keep=0: tools  # every tool offered at once
    run(chat, specs, f"all {len(specs)} tools")


if __name__ == "__main__":
    main()
