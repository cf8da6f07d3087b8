"""JSON-ready values from what the actions and the session return: dataclasses and pydantic
models become dicts, tuples lists, anything else unknown its text. Owns only that conversion;
what each route returns is api.py's and resources.py's."""

from __future__ import annotations

import dataclasses

from pydantic import BaseModel


def plain(value: object) -> object:
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(value.as_dict() if hasattr(value, "as_dict") else dataclasses.asdict(value))
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    return str(value)
