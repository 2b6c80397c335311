"""What both the store and `deliver` write out, so that neither imports the other: values as
JSON (the database's JSON columns, the MQTT payloads) and MQTT's bound on an offer's life.
Pure."""

from __future__ import annotations

import math
from collections.abc import Mapping
from math import isfinite
from typing import Any

# The longest an offer can live when sent: MQTT v5 carries the message expiry interval as a
# four-byte unsigned number of seconds (about 136 years).
MAX_EXPIRY_S = 2**32 - 1


def jsonable(value: Any) -> Any:
    """`value` with mappings as dicts, sequences as lists and anything exotic as str."""
    kind = type(value)
    if kind is dict:  # an event's reason: plain values, but for the list of anchors
        out = {}
        for k, v in value.items():
            vkind = type(v)
            if vkind is float:
                v = v if isfinite(v) else None
            elif not (vkind is str or vkind is int or v is None or vkind is bool):
                v = jsonable(v)
            out[k if type(k) is str else str(k)] = v
        return out
    if kind is list and all(type(v) is str for v in value):  # the anchors of a fix
        return list(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)
