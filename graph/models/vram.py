"""The VRAM budget of the Ollama chat model: how large a context fits on the GPU, and
getting the model out of the way of our own GPU jobs.

Owns: reading the GPU's free memory (NVML, GPU 0), estimating the KV cache from the
model's shape (Ollama's `show`), choosing `num_ctx` for `num_ctx: auto`, the spill
warning and the KV-cache advice shown by `status` (`Plan`), and unloading/reloading the
chat model around training or evolution (`gpu_job`).
Does not own: building the chat model (llm.py) or showing the plan (cli/status.py).

The estimate: VRAM needed = model file + KV cache(num_ctx) + overhead, where overhead =
10% of the model + 300 MiB (llama.cpp's compute graph and the logits buffer, which grow
with the model; the CUDA context of the runner). The KV cache per token is
2 (K and V) × layers × KV heads × head size × bytes per element: f16 2, q8_0 34/32,
q4_0 18/32 (a GGML block: 32 values plus a 2-byte scale). Ollama quantizes the KV cache
only with flash attention on. num_ctx goes in steps of 1024 tokens (finer than powers of
two: a 6 GB card that holds 21k tokens gets 21504, not 16384).

OLLAMA_FLASH_ATTENTION and OLLAMA_KV_CACHE_TYPE act where `ollama serve` runs; this
process can only see its own environment, so when it does not see them it assumes
the f16 default (the safe, larger estimate).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from urllib.parse import urlparse

from ollama import ResponseError

from graph.config import Settings
from graph.models import ollama_client

log = logging.getLogger("agent.vram")

MiB, GiB = 2**20, 2**30
OVERHEAD_FRACTION = 0.10  # of the model file
OVERHEAD_FIXED = 300 * MiB
STEP = 1024  # num_ctx is a multiple of this (or the cap itself)
NO_GPU_NUM_CTX = 8192  # without a GPU to measure
BYTES_PER_ELEMENT = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
RECOMMENDED_ENV = "OLLAMA_FLASH_ATTENTION=1 and OLLAMA_KV_CACHE_TYPE=q8_0"
WHERE_ENV = ("in the environment of `ollama serve` (Linux: `systemctl edit ollama`; Windows: the user's "
             "environment variables, then restart Ollama)")


def gib(n: float) -> str:
    return f"{n / GiB:.2f} GiB"


def gpu_memory() -> tuple[int, int] | None:
    """(free, total) bytes of GPU 0, or None without NVML or an NVIDIA GPU. Never raises."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        info = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(0))
        return int(info.free), int(info.total)
    except Exception:
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def kv_bytes_per_token(model_info: dict, cache_type: str = "f16") -> int:
    """KV-cache bytes for one token of context, from `/api/show` `model_info`; an unknown
    cache type counts as f16 (what Ollama falls back to). KeyError when the shape is missing."""
    arch = model_info["general.architecture"]

    def get(key: str):
        return model_info.get(f"{arch}.{key}")

    layers, heads, width = get("block_count"), get("attention.head_count"), get("embedding_length")
    if not (layers and heads and width):
        raise KeyError(f"{arch}.block_count/attention.head_count/embedding_length")
    heads = max(heads) if isinstance(heads, list) else heads
    head_dim = width // heads
    k_dim, v_dim = get("attention.key_length") or head_dim, get("attention.value_length") or head_dim
    kv_heads = get("attention.head_count_kv") or heads
    # Some models give the KV heads per layer (a list): their sum replaces layers × heads.
    kv_total = sum(kv_heads) if isinstance(kv_heads, list) else layers * kv_heads
    return math.ceil(kv_total * (k_dim + v_dim) * BYTES_PER_ELEMENT.get(cache_type, 2.0))


def overhead_bytes(model_bytes: int) -> int:
    return int(model_bytes * OVERHEAD_FRACTION) + OVERHEAD_FIXED


def need_bytes(model_bytes: int, kv_per_token: int, num_ctx: int) -> int:
    """VRAM for the model with `num_ctx` tokens of context."""
    return model_bytes + overhead_bytes(model_bytes) + kv_per_token * num_ctx


@dataclass
class Choice:
    num_ctx: int
    fits: bool
    reason: str


def _budget(model_bytes: int, kv_bytes: int, room: int) -> str:
    overhead = overhead_bytes(model_bytes)
    return (f"model {gib(model_bytes)} + KV {gib(kv_bytes)} + overhead {gib(overhead)} = "
            f"{gib(model_bytes + kv_bytes + overhead)} of {gib(room)} free")


def choose_num_ctx(free_bytes: int, model_bytes: int, kv_per_token: int, cap: int,
                   already_loaded_bytes: int = 0, floor: int = 2048) -> Choice:
    """The largest multiple of STEP, at most `cap`, whose `need_bytes` fits in the free VRAM
    plus what this model already holds (Ollama frees that when it reloads it). When not even
    `floor` (or `cap`, if lower) fits: that, with fits=False, as the model would spill to the CPU."""
    room = free_bytes + already_loaded_bytes
    low = min(floor, cap)
    fixed = model_bytes + overhead_bytes(model_bytes)
    most = (room - fixed) // max(kv_per_token, 1) if room > fixed else 0  # tokens that fit
    if most < low:
        return Choice(low, False, (
            f"the model would spill to the CPU (slow): even {low} tokens need "
            f"{_budget(model_bytes, kv_per_token * low, room)}. Use a smaller model or quantization, "
            f"set {RECOMMENDED_ENV}, or close other programs using the GPU"))
    num_ctx = max(min(most // STEP * STEP, cap), low)
    capped = f" (capped at {cap})" if most > cap else ""
    return Choice(num_ctx, True, f"{num_ctx} tokens{capped}: {_budget(model_bytes, kv_per_token * num_ctx, room)}")


@dataclass
class Plan:
    """What `num_ctx: auto` chose and why, for the chat model on Ollama. `as_dict()` for `status`."""

    num_ctx: int
    fits: bool = True  # False: the model (with this context) would spill to the CPU
    gpu: str = "none"  # "none (…)", "unknown (…)" or "4.90 GiB free of 6.00 GiB (GPU 0)"
    reason: str = ""
    model_bytes: int | None = None
    loaded_bytes: int = 0  # VRAM this model already holds in Ollama (/api/ps size_vram)
    kv_bytes_per_token: int | None = None
    kv_cache_type: str = "f16"  # as this process can tell from its environment
    env: dict = field(default_factory=dict)  # OLLAMA_FLASH_ATTENTION / OLLAMA_KV_CACHE_TYPE seen here
    warnings: list[str] = field(default_factory=list)
    recommendations: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        """For people: the GPU, num_ctx and why (a spill is among the warnings), then the advice."""
        return [f"GPU: {self.gpu}", f"num_ctx: {self.reason if self.fits else self.num_ctx}", *self.warnings,
                *(f"recommended: {r}" for r in self.recommendations)]


def _local(base_url: str) -> bool:
    return (urlparse(base_url).hostname or "127.0.0.1") in ("127.0.0.1", "localhost", "::1", "0.0.0.0")


def _same(name: str, model: str) -> bool:
    return name in (model, f"{model}:latest")


def _flash(env: dict) -> bool:
    return (env.get("OLLAMA_FLASH_ATTENTION") or "").strip().lower() in ("1", "t", "true", "yes", "on")


def _cache_type(env: dict) -> str:
    """The KV cache type Ollama would use with this environment: a quantized one needs flash attention."""
    kind = (env.get("OLLAMA_KV_CACHE_TYPE") or "f16").strip().lower()
    return kind if _flash(env) and kind in BYTES_PER_ELEMENT else "f16"


def ollama_plan(settings: Settings) -> Plan:
    """The VRAM plan for the configured Ollama model: num_ctx (auto: the largest that fits;
    a fixed number: checked), warnings and recommendations. Never raises."""
    o = settings.llm.ollama
    client = ollama_client.client(settings)
    env = {k: os.environ[k] for k in ("OLLAMA_FLASH_ATTENTION", "OLLAMA_KV_CACHE_TYPE") if k in os.environ}
    cache = _cache_type(env)
    fixed = o.num_ctx if isinstance(o.num_ctx, int) else None
    plan = Plan(num_ctx=fixed or min(NO_GPU_NUM_CTX, o.max_num_ctx), kv_cache_type=cache, env=env)
    cap, info = o.max_num_ctx, {}
    try:
        plan.model_bytes = next((m.size for m in client.list().models if _same(m.model or "", o.model)), None)
        info = dict(client.show(o.model).modelinfo or {})
        arch = info.get("general.architecture")
        cap = min(cap, info.get(f"{arch}.context_length") or cap)  # no use beyond what the model was trained for
        plan.num_ctx = fixed or min(NO_GPU_NUM_CTX, cap)
        plan.kv_bytes_per_token = kv_bytes_per_token(info, cache)
    except (*ollama_client.ERRORS, KeyError, TypeError, AttributeError) as exc:
        plan.reason = f"{plan.num_ctx} tokens ({'config' if fixed else 'default'}; model size/shape unknown: " \
                      f"{type(exc).__name__})"
    try:  # the VRAM this model already holds comes back when Ollama reloads it with the new num_ctx
        plan.loaded_bytes = sum(m.size_vram or 0 for m in client.ps().models if _same(m.model or "", o.model))
    except (*ollama_client.ERRORS, TypeError, AttributeError):
        pass
    memory = gpu_memory() if _local(o.base_url) else None
    if memory is None:
        plan.gpu = "none (no NVIDIA GPU seen through NVML)" if _local(o.base_url) else \
            f"unknown (Ollama runs on {urlparse(o.base_url).hostname}, not on this machine)"
        plan.reason = plan.reason or f"{plan.num_ctx} tokens ({'config' if fixed else 'the default without a GPU'})"
        return plan
    free, total = memory
    plan.gpu = f"{gib(free)} free of {gib(total)} (GPU 0)"
    model, kv, room = plan.model_bytes, plan.kv_bytes_per_token, free + plan.loaded_bytes
    if not model or kv is None:
        plan.reason = plan.reason or f"{plan.num_ctx} tokens ({'config' if fixed else 'default'}; model size unknown)"
        return plan
    if fixed:
        plan.fits = need_bytes(model, kv, fixed) <= room
        plan.reason = f"{fixed} tokens (config): {_budget(model, kv * fixed, room)}"
        if not plan.fits:
            plan.reason = f"the model would spill to the CPU (slow): {plan.reason}. Lower llm.ollama.num_ctx or " \
                          "set it to auto"
    else:
        choice = choose_num_ctx(free, model, kv, cap, plan.loaded_bytes)
        plan.num_ctx, plan.fits, plan.reason = choice.num_ctx, choice.fits, choice.reason
    if not plan.fits:
        plan.warnings.append(f"{o.model}: {plan.reason}")
    if cache == "f16":
        plan.recommendations.append(_kv_advice(plan, free, cap, kv_bytes_per_token(info, "q8_0"), fixed))
    return plan


def _kv_advice(plan: Plan, free: int, cap: int, q8: int, fixed: int | None) -> str:
    """Recommend the q8_0 KV cache (this process does not see it set), with what it would buy."""
    model, loaded = plan.model_bytes or 0, plan.loaded_bytes
    now, then = Choice(plan.num_ctx, plan.fits, ""), choose_num_ctx(free, model, q8, cap, loaded)
    if fixed:
        then = Choice(fixed, need_bytes(model, q8, fixed) <= free + loaded, "")
    if not then.fits:
        gain = "that alone would not make it fit; " + (f"lower num_ctx from {fixed}" if fixed else
                                                        "use a smaller model or quantization")
    elif not now.fits:
        gain = f"the model would fit on the GPU with {then.num_ctx} tokens of context"
    elif then.num_ctx > now.num_ctx:
        gain = f"{then.num_ctx - now.num_ctx} more tokens of context ({then.num_ctx} instead of {now.num_ctx})"
    else:
        gain = "the KV cache would take half the VRAM (" + ("num_ctx is fixed in config)" if fixed else
                                                           f"the context is already at its cap, {cap})")
    seen = ", ".join(f"{k}={v}" for k, v in plan.env.items()) or "neither"
    useless = " (a KV cache type has no effect without flash attention)" \
        if "OLLAMA_KV_CACHE_TYPE" in plan.env and not _flash(plan.env) else ""
    return (f"set {RECOMMENDED_ENV} {WHERE_ENV}: {gain}. This process sees {seen}{useless}; "
            "what counts is the server's environment")


def _load(settings: Settings, keep_alive: str | int, seconds: float, notify: Callable[[str], None] | None,
          failed: str) -> bool:
    """Load (or, with keep_alive 0, unload) the chat model: a generate request without a prompt.
    False with one notice line (`failed` + why) when it does not work."""
    o = settings.llm.ollama
    try:
        ollama_client.client(settings, seconds).generate(model=o.model, keep_alive=keep_alive)
    except ResponseError as exc:
        why = f"Ollama at {o.base_url} answered HTTP {exc.status_code}: {exc.error[:200]}"
    except ollama_client.ERRORS as exc:
        why = f"Ollama not reachable at {o.base_url} ({ollama_client.reason(exc)})"
    else:
        return True
    (notify or log.warning)(f"{why}; {failed}")
    return False


def unload(settings: Settings, notify: Callable[[str], None] | None = None) -> bool:
    """Ask Ollama to free the chat model's VRAM now (`keep_alive: 0`). False, with one notice
    line (to `notify`, else the log), when Ollama is not reachable or refuses."""
    model = settings.llm.ollama.model
    done = _load(settings, 0, 60, notify, "nothing unloaded before the GPU job")
    if done:
        log.info("unloaded %s from Ollama for a GPU job", model)
    return done


def reload(settings: Settings, notify: Callable[[str], None] | None = None) -> bool:
    """Load the chat model back (with the configured keep_alive), so the next turn does not wait."""
    o = settings.llm.ollama
    done = _load(settings, o.keep_alive, 300, notify, f"{o.model} not loaded back (the next turn loads it)")
    if done:
        log.info("loaded %s back into Ollama", o.model)
    return done


@contextmanager
def gpu_job(settings: Settings, notify: Callable[[str], None] | None = None) -> Iterator[bool]:
    """Around training or evolution: unload the chat model, run the job, load it back (even when
    the job fails). Yields whether the model was unloaded; without Ollama a no-op with one notice."""
    unloaded = unload(settings, notify)
    try:
        yield unloaded
    finally:
        if unloaded:
            reload(settings, notify)
