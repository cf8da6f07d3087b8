"""What serves with the prompt version in use: the settings evolution attached to it.

Owns: the `evolved` record in the meta table (the prompt version it belongs to, its sampling
`temperature` and its LoRA adapter `lora`), read by the backend (llm.py: which adapter to load)
and the reason node (the temperature), written when evolution promotes a genome and cleared by
a rollback. Does not own: the prompt versions themselves (selfprompt.py), making adapters
(evolution/lora.py) or serving them on a backend (adapters.py).
"""

from __future__ import annotations

import json

from graph.store import Store


def evolved(store: Store) -> dict:
    """What evolution attached to the version serving now (its sampling `temperature`, its LoRA
    adapter `lora`: a GGUF file), or {} when that version has nothing attached (a rollback or a
    newer version ends it)."""
    attached = json.loads(store.get_meta("evolved") or "{}")
    rows = store.read("SELECT id FROM prompts WHERE status IN ('active', 'probation') ORDER BY id DESC LIMIT 1")
    return attached.get("settings", {}) if rows and attached.get("version") == rows[0][0] else {}


def attach(store: Store, version: int, settings: dict) -> None:
    """Attach evolved settings to a version (see `evolved`); {} detaches."""
    store.set_meta("evolved", json.dumps({"version": version, "settings": settings} if settings else {}))
