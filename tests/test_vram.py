"""The VRAM budget (graph/models/vram.py): the KV cache per token, the num_ctx table, the plan for
the Ollama model (no GPU and a 6 GB card, both through a stubbed pynvml), the spill
warning and KV-cache advice, unloading around GPU jobs, and the chosen num_ctx reaching
Ollama. Against tests/ollama_server.py, whose qwen2:7b-instruct is 4.4 GB of qwen2-7B shape."""

import socket
from types import SimpleNamespace

import pynvml
import pytest
from langchain_ollama import ChatOllama

from graph.config import Settings
from graph.models import llm, vram
from ollama_server import QWEN2_7B, OllamaServer

MODEL = "qwen2:7b-instruct"
GB, GiB = 10**9, 2**30  # model files in GB (as Ollama lists them), VRAM in GiB (as NVML and cards count)
F16, Q8 = 57_344, 30_464  # qwen2-7B KV bytes per token: 28 layers × 4 KV heads × 128 × 2 (K, V) × 2 or 34/32 bytes


@pytest.fixture(autouse=True)
def _no_ollama_env(monkeypatch):
    for name in ("OLLAMA_FLASH_ATTENTION", "OLLAMA_KV_CACHE_TYPE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server():
    with OllamaServer(models=[MODEL]) as server:
        yield server


def fake_gpu(monkeypatch, free: int, total: int = 6 * GiB) -> None:
    """pynvml answering as a card with `free` of `total` bytes (an RTX 4050 Laptop has 6 GiB)."""
    monkeypatch.setattr(pynvml, "nvmlInit", lambda: None)
    monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: None)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", lambda index: f"gpu{index}")
    monkeypatch.setattr(pynvml, "nvmlDeviceGetMemoryInfo", lambda handle: SimpleNamespace(free=free, total=total))


def settings(url: str, **ollama) -> Settings:
    return Settings.model_validate({"llm": {"temperature": 0, "max_tokens": 16,
                                            "ollama": {"base_url": url, "model": MODEL, **ollama}}})


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


# KV cache per token

def test_kv_bytes_per_token_qwen2_7b():
    assert vram.kv_bytes_per_token(QWEN2_7B, "f16") == 28 * 4 * 128 * 2 * 2 == F16
    assert vram.kv_bytes_per_token(QWEN2_7B, "q8_0") == Q8 == F16 * 17 // 32
    assert vram.kv_bytes_per_token(QWEN2_7B, "q4_0") == 16_128 == F16 * 9 // 32
    assert vram.kv_bytes_per_token(QWEN2_7B, "bf17") == F16  # unknown: f16, as Ollama falls back


def test_kv_bytes_per_token_key_value_lengths_and_per_layer_heads():
    gemma = {"general.architecture": "gemma3", "gemma3.block_count": 26, "gemma3.embedding_length": 1152,
             "gemma3.attention.head_count": 4, "gemma3.attention.head_count_kv": 1,
             "gemma3.attention.key_length": 256, "gemma3.attention.value_length": 256}
    assert vram.kv_bytes_per_token(gemma, "f16") == 26 * 1 * (256 + 256) * 2  # not 1152/4 = 288 wide
    per_layer = {**QWEN2_7B, "qwen2.attention.head_count_kv": [4] * 14 + [0] * 14}
    assert vram.kv_bytes_per_token(per_layer, "f16") == F16 // 2
    with pytest.raises(KeyError):
        vram.kv_bytes_per_token({"general.architecture": "qwen2"}, "f16")


# The num_ctx table. Every model has qwen2-7B's shape (F16/Q8 bytes per token above).
# need(n) = model + overhead + KV × n, overhead = 10% of the model + 300 MiB (314,572,800 B);
# num_ctx = the largest multiple of 1024 with need ≤ free, then capped; below 2048: spill.
#  4.4 GB: model + overhead = 4.4e9 + 0.44e9 + 314,572,800 = 5,154,572,800 B
#    6 GiB (6,442,450,944): 1,287,878,144 left → f16 22,458 tokens → 21504; q8_0 42,275 → 41984
#    8 GiB (8,589,934,592): 3,435,361,792 left → f16 59,907 → 59392; q8_0 112,767 → 112640
#    4 GiB (4,294,967,296): less than model + overhead → spill, 2048
#    24 GiB: 359,501 tokens → the cap
#  2 GB: 2e9 + 0.2e9 + 314,572,800 = 2,514,572,800 B
#    4 GiB: 1,780,394,496 left → f16 31,047 → 30720; q8_0 58,442 → 58368
#    6 GiB: 3,927,878,144 left → f16 68,496 → 67584
#  7 GB: 7e9 + 0.7e9 + 314,572,800 = 8,014,572,800 B
#    6 GiB, 4 GiB: spill; 8 GiB: 575,361,792 left → f16 10,033 → 9216; q8_0 18,886 → 18432
TABLE = [  # model GB, free GiB, KV/token, cap → num_ctx, fits
    (4.4, 6, F16, 32768, 21504, True),
    (4.4, 6, Q8, 32768, 32768, True),  # capped by max_num_ctx
    (4.4, 6, Q8, 131072, 41984, True),
    (4.4, 6, F16, 8192, 8192, True),
    (4.4, 6, F16, 10000, 10000, True),  # a cap that is no multiple of 1024 is kept
    (4.4, 8, F16, 131072, 59392, True),
    (4.4, 8, Q8, 131072, 112640, True),
    (4.4, 4, F16, 32768, 2048, False),
    (4.4, 4, Q8, 32768, 2048, False),
    (4.4, 24, F16, 32768, 32768, True),
    (4.4, 24, Q8, 131072, 131072, True),
    (2, 4, F16, 131072, 30720, True),
    (2, 4, Q8, 131072, 58368, True),
    (2, 6, F16, 131072, 67584, True),
    (7, 6, F16, 32768, 2048, False),
    (7, 4, Q8, 32768, 2048, False),
    (7, 8, F16, 32768, 9216, True),
    (7, 8, Q8, 32768, 18432, True),
    (7, 24, F16, 32768, 32768, True),
]


@pytest.mark.parametrize("model_gb, free_gib, kv, cap, num_ctx, fits", TABLE)
def test_num_ctx_table(model_gb, free_gib, kv, cap, num_ctx, fits):
    choice = vram.choose_num_ctx(free_gib * GiB, int(model_gb * GB), kv, cap)
    assert (choice.num_ctx, choice.fits) == (num_ctx, fits)
    assert ("spill to the CPU" in choice.reason) == (not fits)
    if fits:
        assert choice.num_ctx == cap or vram.need_bytes(int(model_gb * GB), kv, num_ctx + 1024) > free_gib * GiB


def test_num_ctx_edges():
    model = 7 * GB
    exact = vram.need_bytes(model, F16, 2048)  # 8,132,013,312: exactly the floor
    choice = vram.choose_num_ctx(exact, model, F16, 32768)
    assert (choice.num_ctx, choice.fits) == (2048, True)
    assert not vram.choose_num_ctx(exact - 1, model, F16, 32768).fits
    assert vram.choose_num_ctx(exact - 1, model, F16, 1024).num_ctx == 1024  # a cap below the floor is the floor
    # VRAM the same model holds in Ollama counts as free: 1 GiB free + 5 GB loaded (room 6,073,741,824)
    # − 5,154,572,800 = 919,169,024 → 16,029 tokens → 15360
    assert vram.choose_num_ctx(1 * GiB, int(4.4 * GB), F16, 32768, already_loaded_bytes=5 * GB).num_ctx == 15360
    assert not vram.choose_num_ctx(1 * GiB, int(4.4 * GB), F16, 32768).fits


def test_spill_reason_says_what_to_do():
    reason = vram.choose_num_ctx(4 * GiB, int(4.4 * GB), F16, 32768).reason
    assert "spill to the CPU (slow)" in reason
    for advice in ("smaller model", "OLLAMA_KV_CACHE_TYPE=q8_0", "OLLAMA_FLASH_ATTENTION=1"):
        assert advice in reason


# GPU memory and the plan

def test_no_gpu_gives_8192(server):  # NVML finds no driver (conftest's stub)
    assert vram.gpu_memory() is None
    plan = vram.ollama_plan(settings(server.url))
    assert (plan.num_ctx, plan.fits, plan.warnings, plan.recommendations) == (8192, True, [], [])
    assert plan.lines()[0].startswith("GPU: none")
    assert plan.model_bytes == 4_400_000_000 and plan.kv_bytes_per_token == F16
    assert vram.ollama_plan(settings(server.url, max_num_ctx=4096)).num_ctx == 4096


def test_nvml_stub_six_gb_card(monkeypatch, server):
    fake_gpu(monkeypatch, free=int(5.5 * GiB))
    assert vram.gpu_memory() == (int(5.5 * GiB), 6 * GiB)
    # 5.5 GiB = 5,905,580,032 − 5,154,572,800 = 751,007,232 B for KV: f16 13,096 tokens → 12288,
    # q8_0 24,652 → 24576
    plan = vram.ollama_plan(settings(server.url))
    assert (plan.num_ctx, plan.fits, plan.warnings) == (12288, True, [])
    assert plan.gpu == "5.50 GiB free of 6.00 GiB (GPU 0)" and plan.lines()[0] == f"GPU: {plan.gpu}"
    assert plan.reason == ("12288 tokens: model 4.10 GiB + KV 0.66 GiB + overhead 0.70 GiB = 5.46 GiB"
                           " of 5.50 GiB free")
    assert set(plan.as_dict()) >= {"num_ctx", "fits", "gpu", "reason", "warnings", "recommendations",
                                   "kv_cache_type", "model_bytes", "kv_bytes_per_token", "loaded_bytes", "env"}


def test_nvml_errors_mean_no_gpu(monkeypatch):
    def fail(*args):
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)

    fake_gpu(monkeypatch, free=GiB)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", fail)
    assert vram.gpu_memory() is None
    monkeypatch.setattr(pynvml, "nvmlInit", fail)
    assert vram.gpu_memory() is None


def test_plan_counts_the_model_already_loaded(monkeypatch):
    fake_gpu(monkeypatch, free=1 * GiB)
    with OllamaServer(models=[MODEL], loaded={MODEL: 5 * GB}) as server:
        plan = vram.ollama_plan(settings(server.url))
    assert (plan.loaded_bytes, plan.num_ctx, plan.fits) == (5 * GB, 15360, True)


def test_spill_warning(monkeypatch, server):
    fake_gpu(monkeypatch, free=4 * GiB, total=4 * GiB)
    plan = vram.ollama_plan(settings(server.url))
    assert (plan.num_ctx, plan.fits) == (2048, False)
    assert len(plan.warnings) == 1 and MODEL in plan.warnings[0] and "spill to the CPU" in plan.warnings[0]
    assert "would not make it fit" in plan.recommendations[0]


def test_fixed_num_ctx_is_checked(monkeypatch, server):
    fake_gpu(monkeypatch, free=int(5.5 * GiB))
    plan = vram.ollama_plan(settings(server.url, num_ctx=32768))
    assert (plan.num_ctx, plan.fits) == (32768, False)
    assert "spill to the CPU" in plan.warnings[0] and "Lower llm.ollama.num_ctx" in plan.warnings[0]
    assert vram.ollama_plan(settings(server.url, num_ctx=4096)).fits


def test_recommends_flash_attention_and_q8_kv_cache(monkeypatch, server):
    fake_gpu(monkeypatch, free=int(5.5 * GiB))
    [advice] = vram.ollama_plan(settings(server.url)).recommendations
    assert "OLLAMA_FLASH_ATTENTION=1 and OLLAMA_KV_CACHE_TYPE=q8_0" in advice
    assert "12288 more tokens of context (24576 instead of 12288)" in advice
    assert "ollama serve" in advice and "This process sees neither" in advice

    monkeypatch.setenv("OLLAMA_KV_CACHE_TYPE", "q8_0")  # without flash attention it does nothing
    plan = vram.ollama_plan(settings(server.url))
    assert plan.kv_cache_type == "f16" and plan.num_ctx == 12288
    assert "no effect without flash attention" in plan.recommendations[0]

    monkeypatch.setenv("OLLAMA_FLASH_ATTENTION", "1")
    plan = vram.ollama_plan(settings(server.url))
    assert (plan.kv_cache_type, plan.num_ctx, plan.recommendations) == ("q8_0", 24576, [])
    assert plan.env == {"OLLAMA_FLASH_ATTENTION": "1", "OLLAMA_KV_CACHE_TYPE": "q8_0"}


def test_q8_kv_cache_can_make_the_model_fit(monkeypatch):
    # 5 GB: model + overhead 5,814,572,800, 91,007,232 B left in 5.5 GiB: f16 1,587 tokens (spill), q8_0 2,987 → 2048
    fake_gpu(monkeypatch, free=int(5.5 * GiB))
    with OllamaServer(models=[MODEL], sizes={MODEL: 5 * GB}) as server:
        plan = vram.ollama_plan(settings(server.url))
    assert not plan.fits and "would fit on the GPU with 2048 tokens" in plan.recommendations[0]


def test_remote_ollama_is_not_measured_here(monkeypatch):
    fake_gpu(monkeypatch, free=24 * GiB)
    plan = vram.ollama_plan(settings("http://192.0.2.1:11434", connect_timeout_s=0.2))
    assert plan.num_ctx == 8192 and plan.gpu.startswith("unknown (Ollama runs on 192.0.2.1")


# Unloading around GPU jobs

def test_gpu_job_unloads_then_reloads(server):
    server.loaded[MODEL] = 5 * GB
    notes: list[str] = []
    with vram.gpu_job(settings(server.url), notify=notes.append) as unloaded:
        assert unloaded and MODEL not in server.loaded
        assert server.generates == [{"model": MODEL, "keep_alive": 0, "stream": False}]  # no prompt: unload only
    assert server.generates[1] == {"model": MODEL, "keep_alive": "5m", "stream": False} and MODEL in server.loaded
    with pytest.raises(RuntimeError), vram.gpu_job(settings(server.url, keep_alive="1h")):
        raise RuntimeError("training failed")
    assert server.generates[-1]["keep_alive"] == "1h"  # loaded back all the same
    assert notes == []


def test_unload_of_a_model_ollama_lacks_says_so(server):
    notes: list[str] = []
    assert not vram.unload(Settings.model_validate({"llm": {"ollama": {"base_url": server.url, "model": "nope"}}}),
                           notify=notes.append)
    assert len(notes) == 1 and "HTTP 404" in notes[0] and "not found" in notes[0]


def test_gpu_job_without_ollama_is_a_quiet_no_op():
    notes: list[str] = []
    ran = False
    with vram.gpu_job(settings(closed_port_url()), notify=notes.append) as unloaded:
        ran = True
    assert ran and unloaded is False
    assert len(notes) == 1 and "Ollama not reachable" in notes[0] and "nothing unloaded" in notes[0]


# The chosen num_ctx reaches Ollama

def test_auto_num_ctx_is_sent_to_ollama(monkeypatch, server):
    fake_gpu(monkeypatch, free=int(5.5 * GiB))
    backend = llm.resolve(settings(server.url))
    assert backend.name == "ollama" and isinstance(backend.chat, ChatOllama)
    assert backend.context_window == backend.chat.num_ctx == backend.plan.num_ctx == 12288
    backend.chat.invoke("Say hi.")
    assert server.requests[-1]["options"]["num_ctx"] == 12288


def test_fixed_num_ctx_is_sent_as_configured(monkeypatch, server):
    fake_gpu(monkeypatch, free=int(5.5 * GiB))
    backend = llm.resolve(settings(server.url, num_ctx=4096))
    assert backend.chat.num_ctx == backend.context_window == 4096 and backend.plan.fits


def test_a_model_that_would_spill_is_announced_before_the_first_turn(monkeypatch, server):
    fake_gpu(monkeypatch, free=4 * GiB, total=4 * GiB)
    backend = llm.resolve(settings(server.url))
    assert backend.name == "ollama" and "spill to the CPU" in backend.notice
    assert backend.notice == backend.plan.reason
