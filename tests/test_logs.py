"""Log lines as journald and a central collector read them."""

from __future__ import annotations

import json
import logging

from gateway.runtime.logs import JournalFormatter, JsonFormatter


def record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("gateway.runtime.app", level, __file__, 1, message, None, None)


def test_journal_lines_carry_the_syslog_priority() -> None:
    f = JournalFormatter("%(message)s")
    assert f.format(record(logging.WARNING, "broker down")) == "<4>gateway.runtime.app: broker down"
    assert f.format(record(logging.ERROR, "x")).startswith("<3>")


def test_json_lines_are_one_object_each() -> None:
    line = JsonFormatter().format(record(logging.INFO, "rules reloaded: 7 rules in force"))
    entry = json.loads(line)
    assert entry["level"] == "info" and entry["logger"] == "gateway.runtime.app"
    assert entry["message"] == "rules reloaded: 7 rules in force"
    assert entry["time"].endswith("+00:00") and "\n" not in line
