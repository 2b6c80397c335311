"""An anchor that falls silent raises one alarm, and clears when it is heard again."""

from __future__ import annotations

from gateway.runtime.health import AnchorWatch


def test_silence_is_raised_once_and_cleared() -> None:
    watch = AnchorWatch(["node-tv", "node-photo", "node-never"], silent_after_s=120)
    heard = {"node-tv": 100.0, "node-photo": 100.0}
    assert watch.check(200.0, heard).fell_silent == ()
    first = watch.check(221.0, heard)
    assert first.fell_silent == ("node-photo", "node-tv") and first.came_back == ()
    assert watch.check(300.0, heard).fell_silent == ()  # still silent: no second alarm
    back = watch.check(301.0, {**heard, "node-tv": 300.5})
    assert back.came_back == ("node-tv",) and watch.silent == {"node-photo"}
    assert "node-never" not in watch.silent  # never heard since start: not an alarm
