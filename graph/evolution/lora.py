"""The LoRA operators of the evolution subgraph: real LoRA adapters for a GGUF model (the embedded
one, or the Ollama model's weights), trained on CPU, or as 4-bit QLoRA on a CUDA GPU.

Owns: the base model for training (the GGUF loaded by transformers once, then cached as a float16
checkpoint; on CUDA quantized to 4-bit nf4 on load), training a PEFT LoRA adapter on chat examples,
scoring a model on held-out cases (the LoRA fitness), merging adapters with PEFT's
`add_weighted_adapter`, searching merge weights with CMA-ES (as LoraHub and Sakana's evolutionary
model merge do), and writing an adapter as a llama.cpp GGUF LoRA for its base GGUF (llama, qwen2 and
a few more architectures), with the identity of those base weights inside (`adapters.adapter_base`).
Does not own: the population, archive, lineage and promotion (the rest of graph/evolution), which
examples to learn from (tuning.py), or running the adapter in the agent (embedded.py).

PEFT wraps the base model in place: one operation at a time per base model. Every function that
wraps it takes the PEFT layers off again before it returns, except `merge`, whose caller gets the
wrapped model (`.unload()` gives the plain base back).
Heavy packages are imported inside the functions: `python agent.py --help` stays fast.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import random
import shutil
import statistics
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graph.models.vram import GiB

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]  # the attention projections
COMBINATIONS = ("linear", "ties", "dare_linear")
BOUND = 1.5  # merge weights stay in [-BOUND, BOUND] (LoraHub's bounds)
MIN_DENSITY = 0.1
MAX_TOKENS = 256  # an example longer than this keeps its last tokens (the answer)
UNLIKELY_WEIGHT = 0.5  # the unlikelihood term of undesirable answers, against the SFT loss
BITSANDBYTES = "bitsandbytes==0.50.2"  # as pinned in requirements.txt
# Whether llama.cpp's convert_hf_to_gguf.py reorders the rows of q and k of an architecture for its RoPE:
# LlamaModel.permute (SmolLM3Model inherits it); Qwen2Model, Qwen3Model and Gemma3Model keep HF's order.
PERMUTES_QK = {"llama": True, "smollm3": True, "qwen2": False, "qwen3": False, "gemma3": False}
# PEFT imports bitsandbytes, which warns on CPUs with AVX512-BF16 that its optional `kernels` is missing
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


class LoraUnavailable(Exception):
    """A package is missing or an input cannot be used; the message says which, in one line."""


@dataclass
class Case:
    """A held-out case: the chat before the answer, the desirable answer, maybe an undesirable one."""
    prompt: list[dict]
    good: str
    bad: str | None = None


@dataclass
class Searched:
    """The best merge CMA-ES found, and the best mean score after each iteration."""
    weights: list[float]
    density: float
    combination: str
    score: float
    history: list[float] = field(default_factory=list)


def _require(*packages: str) -> None:
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing:
        raise LoraUnavailable(f"LoRA needs {', '.join(missing)}: pip install -r requirements.txt")


def training_device() -> str:
    """Where `base_model(device="auto")` puts the model: "cuda" when torch sees a CUDA GPU, else "cpu"."""
    _require("torch")
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def qlora_vram_bytes(parameter_count: int) -> int:
    """A rough estimate of the GPU memory of 4-bit QLoRA training (`base_model` on CUDA, `train`) at
    256 tokens x batch 4, not measured on a GPU here. Assumed: 93% of the parameters in linear
    layers, the LM head included, in nf4 with double quantization (~0.52 bytes each); 7% in the
    input embeddings, kept in 16 bits (Qwen2-7B: 7.2%, Llama-3-8B: 6.5%); 1.5 GiB for the
    checkpointed activations, the logits (Qwen2's 152k vocabulary: ~0.3 GB at 16 bits), the
    adapter and its optimizer, and the CUDA context. Qwen2-7B: ~5.9 GiB."""
    return int(parameter_count * (0.93 * 0.52 + 0.07 * 2)) + 3 * GiB // 2


def base_model(cache_dir: Path, gguf: Path | None = None, device: str = "auto",
               quantize: bool | None = None) -> tuple[Any, Any]:
    """The base model for training and its tokenizer, on `device` ("cuda", "cpu", or "auto":
    `training_device()`). Quantized (`quantize`, by default on CUDA only), it is 4-bit QLoRA's base:
    nf4 weights (an untied LM head too) with double quantization, computing in bfloat16 (float16
    where the GPU lacks it; float32 on CPU), frozen, with activation checkpointing; otherwise
    float32. The first call loads the GGUF (by default the embedded model) through transformers
    (dequantized, ~20 s) and caches a float16 checkpoint under `cache_dir`; later calls load the
    cache (~2 s). A cache whose files fail to load is rebuilt."""
    _require("torch", "transformers", "gguf")
    from transformers.utils import logging as hf_logging

    from graph.models.embedded import default_model_path

    device = training_device() if device == "auto" else device
    quantize = device == "cuda" if quantize is None else quantize
    if device == "cuda" and training_device() != "cuda":
        raise LoraUnavailable("no CUDA GPU: torch.cuda.is_available() is False")
    if quantize and importlib.util.find_spec("bitsandbytes") is None:
        raise LoraUnavailable(f"4-bit QLoRA needs bitsandbytes: pip install {BITSANDBYTES}")
    hf_logging.disable_progress_bar()  # the run's own progress is shown; no tqdm bars per load
    # PEFT 0.21 calls transformers 5's deprecated (is_)gradient_checkpointing(_enable): not ours to fix
    warnings.filterwarnings("ignore", message="`(is_gradient_checkpointing|gradient_checkpointing_enable)` is "
                            "deprecated", category=FutureWarning)

    gguf = Path(gguf or default_model_path())
    if not gguf.is_file():
        raise LoraUnavailable(f"{gguf}: no such GGUF model file")
    cached = Path(cache_dir) / f"{gguf.stem}-{gguf.stat().st_size}"
    if cached.is_dir():
        try:
            return _load_checkpoint(cached, device, quantize)
        except RuntimeError:
            raise  # out of GPU memory, or a CUDA error: not the cache's fault
        except Exception:  # noqa: BLE001 - truncated, edited or half-deleted: whatever it is, rebuild it
            shutil.rmtree(cached)
    _convert(gguf, cached)
    return _load_checkpoint(cached, device, quantize)


def _convert(gguf: Path, cached: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # float16 as it is dequantized: a 7B model then needs ~15 GB of RAM here, not ~30 (transformers
    # 5.24 warns that packed GGUF weights compute fastest in float32: these are not packed, and not run)
    logging.getLogger("transformers.quantizers.quantizer_gguf").setLevel(logging.ERROR)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float16)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.hf_quantizer.remove_quantization_config(model)  # the weights are already dequantized
    partial = cached.with_name(cached.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.to(torch.float16).save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(cached)  # a cache folder is whole or absent


def _load_checkpoint(path: Path, device: str, quantize: bool) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if not quantize:
        return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device).eval(), tokenizer
    from transformers import AutoConfig, BitsAndBytesConfig

    dtype = torch.float32 if device == "cpu" else torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    tied = AutoConfig.from_pretrained(path).tie_word_embeddings
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype, device_map={"": 0 if device == "cuda" else device},
        quantization_config=BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype,
            llm_int8_skip_modules=None if tied else []))  # an untied LM head (Qwen2-7B: 1 GB at 16 bits) in nf4 too
    for module in model.modules():
        # on CPU, bitsandbytes repacks the weights for inference and back for training, rounding
        # their scales each time: the base would drift a little with every train and score
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
    # PEFT's prepare_model_for_kbit_training would also cast the embeddings and norms to float32
    # (Qwen2-7B: +1.1 GB); frozen, they stay in the compute dtype, and only the adapter trains in float32
    model.requires_grad_(False)
    model.activation_checkpointing_enable({"use_reentrant": False})
    model.enable_input_require_grads()
    return model.eval(), tokenizer


def _encode(tokenizer, prompt: list[dict], answer: str) -> tuple[list[int], int]:
    """Token ids of the chat-formatted conversation, and where the answer starts (the answer
    includes the end-of-turn token, so a model learns to stop)."""
    head = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": answer}], tokenize=False)
    if not full.startswith(head):
        raise LoraUnavailable("the chat template does not extend the prompt with the answer")
    start = len(tokenizer(head, add_special_tokens=False).input_ids)
    ids = tokenizer(full, add_special_tokens=False).input_ids
    cut = max(0, len(ids) - MAX_TOKENS)
    return ids[cut:], max(1, start - cut)


def _answer_logprobs(model, tokenizer, batch: list[tuple[list[int], int]]):
    """The log-probabilities of the answer tokens of a batch, row after row, and the row of each.
    The log-softmax covers the answer tokens alone: over the whole batch it would keep batch x length
    x vocabulary floats for the backward pass (0.6 GB for Qwen2's 152k tokens at 4 x 256)."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), tokenizer.pad_token_id)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    answer = torch.zeros((len(batch), width), dtype=torch.bool)
    for row, (tokens, start) in enumerate(batch):
        ids[row, :len(tokens)] = torch.tensor(tokens)
        attention[row, :len(tokens)] = 1
        answer[row, start:len(tokens)] = True
    ids, attention, answer = ids.to(model.device), attention.to(model.device), answer[:, 1:].to(model.device)
    logits = model(input_ids=ids, attention_mask=attention, use_cache=False).logits[:, :-1][answer].float()
    logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:][answer][:, None])[:, 0]
    return logp, answer.nonzero()[:, 0]


def train(base, tokenizer, examples: list[list[dict]], out_dir: Path, steps: int, rank: int = 8,
          lr: float = 2e-3, undesirable: Sequence[list[dict]] = (), batch: int = 4, seed: int = 0,
          progress: Callable[[int, float], None] | None = None) -> Path:
    """Train a LoRA adapter on the attention projections and save it in `out_dir` (PEFT format).

    Loss: cross-entropy on the tokens of the last assistant message of each desirable example
    (SFT); undesirable examples, when given, add token-level unlikelihood on their answers,
    -log(1 - p(token)) (Welleck et al. 2019), a simple stand-in for KTO's unpaired preference loss
    that needs no reference model. Deterministic for a seed (same seed, same LoRA init)."""
    _require("torch", "peft")
    import torch
    from peft import LoraConfig, get_peft_model

    if not examples:
        raise ValueError("no desirable examples to train on")
    good = [_encode(tokenizer, m[:-1], m[-1]["content"]) for m in examples]
    bad = [_encode(tokenizer, m[:-1], m[-1]["content"]) for m in undesirable]
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = get_peft_model(base, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                                            target_modules=TARGETS, task_type="CAUSAL_LM"))
    try:
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
        model.train()
        for step in range(1, steps + 1):
            logp, _ = _answer_logprobs(model, tokenizer, rng.sample(good, min(batch, len(good))))
            loss = -logp.mean()
            if bad:
                logp, _ = _answer_logprobs(model, tokenizer, rng.sample(bad, min(batch, len(bad))))
                loss = loss - UNLIKELY_WEIGHT * torch.log1p(-logp.exp().clamp(max=1 - 1e-6)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if progress:
                progress(step, loss.item())
        model.save_pretrained(out_dir)
    finally:
        model.unload().eval()  # the plain base again, for the next caller
    return Path(out_dir)


def score(model, tokenizer, cases: list[Case], batch: int = 8) -> list[float]:
    """Per case: the mean per-token log-likelihood of the desirable answer, minus that of the
    undesirable answer when the case has one. Higher is better; the LoRA fitness."""
    import torch

    pairs = [(i, 1.0, c.prompt, c.good) for i, c in enumerate(cases)]
    pairs += [(i, -1.0, c.prompt, c.bad) for i, c in enumerate(cases) if c.bad]
    out = [0.0] * len(cases)
    model.eval()
    with torch.inference_mode():
        for at in range(0, len(pairs), batch):
            chunk = pairs[at:at + batch]
            logp, rows = _answer_logprobs(model, tokenizer, [_encode(tokenizer, p, a) for _, _, p, a in chunk])
            means = logp.new_zeros(len(chunk)).index_add_(0, rows, logp) / rows.bincount(minlength=len(chunk))
            for (i, sign, _, _), mean in zip(chunk, means.tolist()):
                out[i] += sign * mean
    return out


def _with_adapters(base, adapters: list[Path]):
    from peft import PeftModel

    model = PeftModel.from_pretrained(base, str(adapters[0]), adapter_name="p0")
    for i, path in enumerate(adapters[1:], 1):
        model.load_adapter(str(path), adapter_name=f"p{i}")
    return model


def _combine(model, weights: list[float], density: float, combination: str) -> None:
    """Replace the merged adapter by a new one and make it active. It is named "default" so that
    PEFT saves it at the top of a folder (other names go into a subfolder)."""
    import torch

    if combination not in COMBINATIONS:
        raise ValueError(f"combination must be one of {', '.join(COMBINATIONS)}, not {combination!r}")
    if "default" in model.peft_config:
        model.set_adapter("p0")  # deleting the active adapter warns once per layer
        model.delete_adapter("default")
    torch.manual_seed(0)  # dare_linear drops entries at random: the same merge for the same genome
    model.add_weighted_adapter([f"p{i}" for i in range(len(weights))], list(weights), "default",
                               combination_type=combination, density=density)
    model.set_adapter("default")


def merge(base, adapters: list[Path], weights: list[float], density: float = 1.0,
          combination: str = "linear"):
    """The base wrapped with the adapters and their weighted merge, the merge active (PEFT's
    `add_weighted_adapter`; `density` is the share of entries ties/dare_linear keep). Save it
    with `save`; `.unload()` gives the plain base back."""
    _require("torch", "peft")
    if len(adapters) != len(weights) or not adapters:
        raise ValueError("one weight per adapter, at least one adapter")
    model = _with_adapters(base, adapters)
    _combine(model, weights, density, combination)
    return model


def save(merged, out_dir: Path) -> Path:
    """Save the active merge of `merge` as a PEFT adapter folder (for `to_gguf` or a later merge)."""
    merged.save_pretrained(out_dir, selected_adapters=["default"])
    return Path(out_dir)


def search(base, tokenizer, adapters: list[Path], cases: list[Case], combination: str = "linear",
           iterations: int = 8, popsize: int = 6, seed: int = 0,
           progress: Callable[[int, float], None] | None = None) -> Searched:
    """CMA-ES over the merge weights (and the density, for ties and dare_linear) maximizing the
    mean score on `cases`. Weights are bounded to [-1.5, 1.5] and start equal: 1 for ties (it
    averages the entries where the adapters agree, so 1 keeps each at full strength), 1/n for
    linear and dare_linear (they sum the A and the B matrices)."""
    _require("torch", "peft", "cma")
    if not cases:
        raise ValueError("no held-out cases to score merges on")
    with warnings.catch_warnings():  # cma warns on import that matplotlib (for its plots) is missing
        warnings.simplefilter("ignore")
        import cma

    n, pruned = len(adapters), combination != "linear"
    start = [1.0 if combination == "ties" else 1 / n] * n + ([0.7] if pruned else [])
    bounds = [[-BOUND] * n + ([MIN_DENSITY] if pruned else []), [BOUND] * n + ([1.0] if pruned else [])]
    # cma takes seed 0 to mean "seed from the clock"
    es = cma.CMAEvolutionStrategy(start, 0.3, {"popsize": popsize, "seed": seed + 1, "bounds": bounds,
                                               "verbose": -9})
    best = Searched(start[:n], start[n] if pruned else 1.0, combination, -math.inf)
    model = _with_adapters(base, adapters)
    try:
        for iteration in range(1, iterations + 1):
            candidates, losses = es.ask(), []
            for x in candidates:
                weights, density = [float(w) for w in x[:n]], float(x[n]) if pruned else 1.0
                _combine(model, weights, density, combination)
                mean = statistics.fmean(score(model, tokenizer, cases))
                losses.append(-mean)
                if mean > best.score:
                    best.weights, best.density, best.score = weights, density, mean
            es.tell(candidates, losses)
            best.history.append(best.score)
            if progress:
                progress(iteration, best.score)
    finally:
        model.unload().eval()
    return best


def mutate(weights: list[float], density: float, sigma: float, rng: random.Random) -> tuple[list[float], float]:
    """A neighbour of a merge genome: Gaussian steps, kept inside the search bounds."""
    return ([_clip(w + rng.gauss(0, sigma), -BOUND, BOUND) for w in weights],
            _clip(density + rng.gauss(0, sigma), MIN_DENSITY, 1.0))


def _clip(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def _gguf_field(reader, key: str):
    if key not in reader.fields:
        raise LoraUnavailable(f"the base GGUF has no {key}")
    return reader.fields[key].contents()


def to_gguf(adapter_dir: Path, out: Path, base_gguf: Path | None = None) -> Path:
    """Write a PEFT LoRA adapter as a llama.cpp GGUF LoRA for the base GGUF (by default the
    embedded model), as llama.cpp's convert_lora_to_gguf.py does: tensors `blk.N.attn_q.weight.lora_a`
    (rank x in) and `.lora_b` (out x rank), PEFT's orientation, named for the base's architecture;
    where convert_hf_to_gguf.py reorders the q/k rows of each head for llama.cpp's RoPE (llama, not
    qwen2: PERMUTES_QK), `lora_b` of q and k gets the same reordering. The adapter records the base's
    `weights_id` (`adapters.adapter_base` reads it)."""
    _require("gguf", "numpy", "safetensors")
    import gguf
    from safetensors.numpy import load_file

    from graph.models.adapters import BASE_KEY, weights_id
    from graph.models.embedded import default_model_path

    adapter_dir, base_gguf = Path(adapter_dir), Path(base_gguf or default_model_path())
    try:
        config = json.loads((adapter_dir / "adapter_config.json").read_text())
        tensors = load_file(adapter_dir / "adapter_model.safetensors")
    except (OSError, ValueError) as exc:
        raise LoraUnavailable(f"{adapter_dir}: not a PEFT adapter folder ({exc})") from None
    if config.get("use_rslora") or config.get("rank_pattern") or config.get("alpha_pattern"):
        raise LoraUnavailable(f"{adapter_dir}: rsLoRA and per-module ranks have no llama.cpp GGUF form here")
    reader = gguf.GGUFReader(base_gguf)
    arch = _gguf_field(reader, "general.architecture")
    archs = {name: member for member, name in gguf.MODEL_ARCH_NAMES.items()}
    if arch not in PERMUTES_QK or arch not in archs:
        raise LoraUnavailable(f"{arch} base models are not supported: it is not known here whether "
                              "llama.cpp reorders their q/k weights")
    heads = ({"attn_q": _gguf_field(reader, f"{arch}.attention.head_count"),
              "attn_k": _gguf_field(reader, f"{arch}.attention.head_count_kv")} if PERMUTES_QK[arch] else {})
    names = gguf.TensorNameMap(archs[arch], _gguf_field(reader, f"{arch}.block_count"))

    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    writer = gguf.GGUFWriter(partial, arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(config["lora_alpha"]))
    writer.add_string(BASE_KEY, weights_id(base_gguf))
    for key in sorted(k for k in tensors if k.endswith(".lora_A.weight")):
        module = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
        name = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if name is None:
            raise LoraUnavailable(f"{adapter_dir}: no GGUF tensor for {module}")
        a, b = tensors[key], tensors[key.replace(".lora_A.", ".lora_B.")]
        kind = name.split(".")[2]
        if kind in heads:  # convert_hf_to_gguf.py's LlamaModel.permute, on the rows of B
            n = heads[kind]
            b = b.reshape(n, 2, b.shape[0] // n // 2, b.shape[1]).swapaxes(1, 2).reshape(b.shape)
        writer.add_tensor(name + ".lora_a", a.astype("float32"))
        writer.add_tensor(name + ".lora_b", b.astype("float32"))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(out)
    return out
