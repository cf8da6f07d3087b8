"""Serving an evolved LoRA adapter on the model that answers.

The embedded model loads an adapter itself (`Llama(lora_path=...)`). For Ollama an adapter
becomes a model of its own, made as `ollama create` makes one from the Modelfile
`FROM <llm.ollama.model>` + `ADAPTER <adapter.gguf>`: the adapter is uploaded as a blob, then
`/api/create` names it `<model>-evolved:<first 12 hex of the adapter's sha256>`, so each adapter is
made once and found again after a restart.

Owns: where the weights of a backend's model are (the embedded GGUF file, or the blob behind the
Ollama model, read from the `FROM` line of its Modelfile), their size in parameters, whether an
adapter was made for those weights (`weights_id`, recorded by `lora.to_gguf` in every adapter), and the
Ollama models that serve adapters (made, deleted).
Does not own: making adapters (evolution/lora.py), choosing and building the backend (llm.py),
the GPU memory (vram.py).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from ollama import ResponseError

from graph.config import Settings
from graph.models import ollama_client

SUFFIX = "-evolved"  # Ollama models serving adapters are named <model>-evolved:<digest>
REFUSED = "refused to make a model with an adapter"  # (reported of Ollama 0.34.1 and later: no more ADAPTER)
BASE_KEY = "agent.lora.base"  # the adapter GGUF's record of its base weights; llama.cpp ignores unknown keys


class AdapterError(Exception):
    """An adapter cannot be served or trained for this model; the message says why in one line."""


def _failed(exc: Exception, settings: Settings, doing: str) -> AdapterError:
    return AdapterError(f"Ollama at {settings.llm.ollama.base_url} failed {doing}: {ollama_client.reason(exc)}")


def ollama_weights(settings: Settings) -> Path:
    """The GGUF file behind llm.ollama.model (its Modelfile's FROM line). AdapterError when Ollama
    does not say, or the file is not readable here (Ollama on another machine or user)."""
    model = settings.llm.ollama.model
    try:
        modelfile = ollama_client.client(settings, 30).show(model).modelfile or ""
    except ollama_client.ERRORS as exc:
        raise _failed(exc, settings, f"to show {model}") from None
    source = next((line[5:].strip() for line in modelfile.splitlines() if line.upper().startswith("FROM ")), "")
    path = Path(source)
    if not source or not path.is_file() or not os.access(path, os.R_OK):
        raise AdapterError(f"the weights of Ollama's {model} ({source or 'no FROM line in its Modelfile'}) are not a "
                           "file readable here; adapters are trained where Ollama keeps its models")
    return path


def weights(settings: Settings, backend: str) -> Path:
    """The GGUF file of the model `backend` ("embedded" or "ollama") answers with."""
    from graph.models.embedded import EmbeddedModelMissing, model_file

    if backend == "ollama":
        return ollama_weights(settings)
    if backend != "embedded":
        raise AdapterError(f"adapters are made for the embedded model or Ollama's, and {backend} serves")
    try:
        return model_file(settings.llm.embedded.model_path)
    except EmbeddedModelMissing as exc:
        raise AdapterError(str(exc)) from None


def parameters(gguf_file: Path) -> int:
    """How many parameters the GGUF model has (from its tensor shapes; the data is not read)."""
    from gguf import GGUFReader

    return sum(int(t.n_elements) for t in GGUFReader(gguf_file).tensors)


def weights_id(gguf_path: Path) -> str:
    """An identity of a GGUF's weights: its file name (an Ollama blob is named by its sha256) and size."""
    path = Path(gguf_path)
    return f"{path.name}:{path.stat().st_size}"


def adapter_base(adapter_gguf: Path) -> str:
    """The `weights_id` of the base an adapter GGUF was written for (evolution/lora.py's `to_gguf`
    records it under BASE_KEY); '' when it has none, or is missing, unreadable or no GGUF."""
    from gguf import GGUFReader

    try:
        field = GGUFReader(adapter_gguf).fields.get(BASE_KEY)
        return str(field.contents()) if field else ""
    except Exception:  # noqa: BLE001 - a corrupt file can fail anywhere in the reader: it has no base
        return ""


def made_for(adapter: str | Path, weights_file: Path) -> bool:
    """Whether `adapter` was trained on these weights."""
    return adapter_base(adapter) == weights_id(weights_file)


def problem(adapter: str, weights_file: Path, model: str) -> str:
    """Why `adapter` cannot serve on `model` (whose weights are `weights_file`); '' when it can."""
    if not Path(adapter).is_file():
        return f"the evolved LoRA adapter {adapter} is gone"
    if not made_for(adapter, weights_file):
        return f"the evolved LoRA adapter {Path(adapter).parent.name} was not made for {model}"
    return ""


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def ollama_name(settings: Settings, adapter: str | Path) -> str:
    """The name of the Ollama model serving `adapter` on llm.ollama.model."""
    base = re.sub(r"[^A-Za-z0-9_.-]", "-", settings.llm.ollama.model.removesuffix(":latest"))
    return f"{base}{SUFFIX}:{_digest(Path(adapter))[:12]}"


def ollama_model(settings: Settings, adapter: str) -> str:
    """The Ollama model serving `adapter` on llm.ollama.model, made when missing (`ollama create`
    with FROM + ADAPTER). AdapterError when the adapter is not for that model or Ollama refuses."""
    o = settings.llm.ollama
    why = problem(adapter, ollama_weights(settings), o.model)
    if why:
        raise AdapterError(why)
    name, client = ollama_name(settings, adapter), ollama_client.client(settings, 300)
    try:
        try:
            client.show(name)
            return name
        except ResponseError as exc:
            if exc.status_code != 404:
                raise
        digest = client.create_blob(adapter)
    except ollama_client.ERRORS as exc:
        raise _failed(exc, settings, f"to take the adapter {adapter}") from None
    try:
        client.create(model=name, from_=o.model, adapters={Path(adapter).name: digest}, stream=False)
    except ResponseError as exc:  # Ollama answered: no
        raise AdapterError(f"Ollama {ollama_version(settings)} {REFUSED} (FROM {o.model} + ADAPTER): "
                           f"{exc.error or exc.status_code}") from None
    except ollama_client.ERRORS as exc:
        raise _failed(exc, settings, f"to create {name} (FROM {o.model} + ADAPTER {adapter})") from None
    return name


ollama_version = ollama_client.version  # evolution/adapt.py compares it with the one that refused


def forget(settings: Settings, removed: list[Path]) -> list[str]:
    """Delete the Ollama models serving the adapter files in `removed` (about to be deleted).
    Best effort: without Ollama there is nothing to delete. Returns the names deleted."""
    if not removed:
        return []
    try:
        client = ollama_client.client(settings, 30)
        present = {m.model for m in client.list().models}
    except ollama_client.ERRORS:
        return []
    gone = []
    for adapter in removed:
        name = ollama_name(settings, adapter)
        if name in present:
            try:
                client.delete(name)
                gone.append(name)
            except ollama_client.ERRORS:
                pass
    return gone
