"""The processor under the embedded model: its features, the llama.cpp build in use, and
whether llama.cpp may repack weights into its extra buffer types.

Owns: reading the CPU's feature flags (Linux: /proc/cpuinfo; elsewhere none are known and
the llama.cpp build's own report stands in), llama.cpp's version and build features, and
the decision behind `llm.embedded.extra_buffers`: `auto` turns extra buffer types off where
the CPU has AMX, because llama.cpp's AMX kernels segfault in decode (upstream llama.cpp
issue 20824) and turning them off is what makes such machines work.
Does not own: loading or running the model (llama_process.py, embedded.py).
"""

from __future__ import annotations

import json
import platform
import re
import signal
import subprocess
import sys
from pathlib import Path

SHOWN = ("amx_int8", "amx_bf16", "amx_tile", "avx512f", "avx512_vnni", "avx2", "fma", "f16c")


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as the kernel reports them (empty where it does not)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    line = re.search(r"^flags\s*:(.*)$", text, re.M)
    return frozenset(line.group(1).split()) if line else frozenset()


def cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        found = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
        if found:
            return found.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def has_amx(flags: frozenset[str]) -> bool:
    return any(flag.startswith("amx") for flag in flags)


def extra_buffers(setting: str, flags: frozenset[str] | None = None) -> tuple[bool, str]:
    """Whether llama.cpp may use extra buffer types (weight repacking), and why: the
    `llm.embedded.extra_buffers` setting; `auto` is off on a CPU with AMX, on elsewhere."""
    if setting in ("on", "off"):
        return setting == "on", f"{setting} (llm.embedded.extra_buffers)"
    if has_amx(cpu_flags() if flags is None else flags):
        return False, "off: this CPU has AMX, whose llama.cpp kernels crash (llama.cpp issue 20824)"
    return True, "on (auto: no AMX on this CPU)"


PROBE = ("import json, re, llama_cpp; info = llama_cpp.llama_print_system_info().decode('utf-8', 'replace'); "
         "print(json.dumps({'version': llama_cpp.__version__, "
         "'features': [n for n, on in re.findall(r'([A-Z0-9_]+) = (\\d)', info) if on == '1']}))")


def build() -> dict:
    """The llama.cpp build: the llama-cpp-python version and the features it was compiled with
    ("AVX2", "AVX512", "AMX_INT8", "REPACK"...). Asked in a child process, so that a build made
    for another CPU (an illegal instruction) is reported instead of ending the caller."""
    try:
        done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"version": None, "features": [], "error": str(exc)}
    if done.returncode == 0:
        return json.loads(done.stdout)
    if done.returncode < 0:
        why = f"llama.cpp cannot run on this CPU ({signal.Signals(-done.returncode).name}); reinstall it here: " \
              "pip install --force-reinstall --no-cache-dir llama-cpp-python"
    else:
        lines = done.stderr.strip().splitlines()
        why = lines[-1] if lines else f"exit code {done.returncode}"
    return {"version": None, "features": [], "error": why}


def report(setting: str) -> dict:
    """What `agent.py status` shows about the embedded model's processor, for bug reports."""
    flags = cpu_flags()
    on, why = extra_buffers(setting, flags)
    return {"cpu": cpu_name(), "flags": [f for f in SHOWN if f in flags], "extra_buffers": on,
            "extra_buffers_why": why, "llama_cpp": build()}
