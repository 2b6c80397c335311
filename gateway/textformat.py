"""How a report command writes its result: `table` for a terminal, `json`, `csv`."""

from __future__ import annotations

from enum import StrEnum


class Format(StrEnum):
    """How a report is written."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"
