"""The optional mypyc build (`rayon_tooling.benchmarks.compiled`): a few hot modules compiled in a
copy of the package (the locator, the grid of its `auto` method, `jsonable`) behave as the pure
source does.  Nothing is timed."""

from __future__ import annotations

import json
import math
import os
import pathlib
import subprocess
import sys
from pathlib import Path
from typing import cast

import pytest

from rayon_tooling.benchmarks.compiled import (
    STAMP,
    CompileError,
    Fixed,
    Run,
    _check,
    build,
    check_toolchain,
    locator_fixes,
    module_path,
)

PROBE = "import json, sys; from rayon_tooling.benchmarks.compiled import locator_fixes as f; " + (
    "import gateway.locate.locator as m; print(json.dumps([m.__file__, f(sys.argv[1])]))"
)
# Values `wire.jsonable` meets (an event's reason, a fix's anchors) and exotic ones, as source
# evaluated alike in this process and in the compiled copy's.
SAMPLES = (
    "[{'anchors': ['a1', 'a2'], 'dwell_s': 12.5, 'far': math.inf, 3: None, 'ok': True}, "
    "['a1', 'a2'], ('x', 1, 2.0, math.nan), {'nested': {'set': frozenset({'b'}), 'n': 7}}, "
    "None, False, 'text', -4, 1.25, pathlib.PurePosixPath('p')]"
)
JSONABLE = "import json, math, pathlib; from gateway import wire; " + (
    f"print(json.dumps([wire.__file__, [wire.jsonable(v) for v in {SAMPLES}]]))"
)
MODULES = ("gateway.locate.locator", "gateway.locate.grid", "gateway.wire")


def _toolchain_or_skip() -> None:
    try:
        check_toolchain()
    except CompileError as error:
        pytest.skip(f"the compiled build cannot run here: {error}")


@pytest.fixture(scope="module")
def compiled_locate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package with MODULES compiled (~30 s), shared by the tests."""
    _toolchain_or_skip()
    return build(tmp_path_factory.mktemp("mypyc"), MODULES)


def _run_compiled(root: Path, code: str, *args: str) -> object:
    """`code` in a fresh interpreter whose `gateway` is the compiled copy under `root`; its
    JSON line, [the compiled module's file, the result]."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=root.parent,  # not the source tree, which would come before PYTHONPATH
        env=dict(os.environ, PYTHONPATH=str(root)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-1500:]
    where, found = json.loads(done.stdout)
    assert where.startswith(str(root)) and where.endswith(".so"), where
    return found


def _compiled_fixes(root: Path, method: str) -> list[Fixed]:
    return cast(list[Fixed], _run_compiled(root, PROBE, method))


# Compiled and pure fixes agree to a nanometre, not to the last bit.  On Python 3.12+ the
# builtin sum() of floats is compensated (Neumaier), while mypyc compiles `sum(gen, 0.0)` to a
# plain loop of additions: the multilateration fixes then differ by 1 ulp (seen: 9 of 240
# floats, at most 3.6e-15 m, relative 2.2e-16).  rel 1e-9 / abs 1e-9 m is a million times that
# and a million times finer than any mistake a compiled build could make in a position
# (centimetres); timestamps and anchor lists are still compared exactly.
REL_TOL = ABS_TOL_M = 1e-9


def _assert_same_fixes(compiled: list[Fixed], pure: list[Fixed]) -> None:
    assert len(compiled) == len(pure)
    for got, want in zip(compiled, pure, strict=True):
        assert len(got) == len(want) and got[0] == want[0] and got[-1] == want[-1]
        assert got[1:-1] == pytest.approx(want[1:-1], rel=REL_TOL, abs=ABS_TOL_M)  # x, y, ±


def test_a_compiled_locator_gives_the_pure_centroid_fixes(compiled_locate: Path) -> None:
    root = compiled_locate
    assert not (root / "pyproject.toml").exists() and (root / "gateway" / "py.typed").is_file()
    pure = locator_fixes("centroid")
    assert sum("," in str(fix[-1]) for fix in pure) > 40  # fixes of 2+ anchors
    _assert_same_fixes(_compiled_fixes(root, "centroid"), pure)


def test_a_compiled_locator_gives_the_pure_multilateration_fixes(compiled_locate: Path) -> None:
    pure = locator_fixes("multilateration")
    _assert_same_fixes(_compiled_fixes(compiled_locate, "multilateration"), pure)


def test_a_compiled_locator_and_grid_give_the_pure_auto_fixes(compiled_locate: Path) -> None:
    pure = locator_fixes("auto")
    assert sum(str(fix[-1]).count(",") >= 2 for fix in pure) > 20  # 3+ anchors: the grid's pull
    _assert_same_fixes(_compiled_fixes(compiled_locate, "auto"), pure)


def test_a_compiled_jsonable_gives_the_pure_values(compiled_locate: Path) -> None:
    from gateway.wire import jsonable

    values = eval(SAMPLES, {"math": math, "pathlib": pathlib})  # our own literal, as in the child
    pure = json.loads(json.dumps([jsonable(v) for v in values]))
    assert _run_compiled(compiled_locate, JSONABLE) == pure


def test_an_unchanged_source_is_not_built_again(compiled_locate: Path) -> None:
    stamp = (compiled_locate / STAMP).stat().st_mtime_ns
    assert build(compiled_locate, MODULES) == compiled_locate
    assert (compiled_locate / STAMP).stat().st_mtime_ns == stamp


def test_an_unknown_module_says_so(tmp_path: Path) -> None:
    _toolchain_or_skip()
    with pytest.raises(CompileError, match=r"no such module in the gateway package: gateway\.nope"):
        build(tmp_path, ("gateway.nope",))


def test_module_paths(tmp_path: Path) -> None:
    (tmp_path / "gateway" / "rules").mkdir(parents=True)
    assert module_path("gateway.rules", tmp_path) == tmp_path / "gateway/rules/__init__.py"
    assert module_path("gateway.zones.tracker", tmp_path) == tmp_path / "gateway/zones/tracker.py"


def test_variants_must_agree_and_really_be_compiled() -> None:
    pure = Run(10, 3, 2, 1, 1.0, 1.0, ())
    compiled = Run(10, 3, 2, 1, 0.5, 0.5, ("gateway.locate.locator",))
    _check([pure], [compiled], ["gateway.locate.locator"])
    with pytest.raises(RuntimeError, match="disagree"):
        _check(
            [pure],
            [Run(10, 3, 2, 2, 0.5, 0.5, ("gateway.locate.locator",))],
            ["gateway.locate.locator"],
        )
    with pytest.raises(RuntimeError, match="but the run loaded"):
        _check([pure], [pure], ["gateway.locate.locator"])
    assert compiled.rate == 20.0
