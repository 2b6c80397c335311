"""A clone of the repository is self-contained, and what a user reads carries no tracker jargon.

- Nothing cites the product contract outside the repository: no `DESIGN.md`, `DESIGN §…` or
  `STYLE.md` (the contract is docs/design.md), and no `../shared/…` path except the optional
  accuracy data sets (`../shared/datasets`, docs/accuracy.md).
- Every path a text names under `docs/`, `deploy/`, `gateway/`, `rayon_tooling/` or
  `firmware_configs/`, and every relative markdown link (with its `#anchor`), exists.
- No issue number in user-facing text: docs, README, config and rule comments, deploy and
  firmware files, and the string literals (help, log and error messages, docstrings) of
  `gateway/` and `rayon_tooling/`.

Each failure names the file and line.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SELF = Path(__file__).resolve()

SCANNED_DIRS = (
    "gateway",
    "rayon_tooling",
    "tests",
    "bench",
    "docs",
    "deploy",
    "rules",
    "firmware_configs",
    "examples",
    "fuzz",
    ".ci",
)
SCANNED_FILES = ("README.md", "config.example.yaml", "pyproject.toml", "dev")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".conf", ".service", ".sh", ".json"}
TEXT_SUFFIXES |= {".txt", ".sql", ""}
SKIPPED_PARTS = {"__pycache__", ".venv", ".mypy_cache", ".pytest_cache", ".ruff_cache"}

# Spelt in two halves so that this file does not match itself.
DESIGN_CITATION = re.compile(r"\bDESIGN" + r"(?:\.md|\s*§|-issue)|\bSTYLE" + r"\.md")
SHARED_PATH = re.compile(r"\.\./shared" + r"(?!/datasets)")
REPO_PATH = re.compile(
    r"(?<![\w./<>-])((?:docs|deploy|gateway|rayon_tooling|firmware_configs)/[A-Za-z0-9_./-]*)"
)
CHECKED_SUFFIXES = {".md", ".py", ".yaml", ".yml", ".json", ".conf", ".service", ".sh", ".toml"}
MD_LINK = re.compile(r"\]\(([^()\s]+)\)")
ISSUE_NUMBER = re.compile(r"\bissues?\s*#?\d+|\(issue\b", re.IGNORECASE)
URL = re.compile(r"https?://\S+")


def text_files() -> Iterator[Path]:
    """Every text file of the scanned folders and top-level files, this test excepted."""
    for name in SCANNED_DIRS:
        for path in sorted((ROOT / name).rglob("*")):
            if (
                path.is_file()
                and path.suffix in TEXT_SUFFIXES
                and not SKIPPED_PARTS & set(path.parts)
            ):
                yield path
    for name in SCANNED_FILES:
        if (ROOT / name).is_file():
            yield ROOT / name


def lines_of(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        return []


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def where(path: Path, lineno: int, text: str) -> str:
    return f"{shown(path)}:{lineno}: {text.strip()[:120]}"


def test_nothing_cites_the_contract_outside_the_repository() -> None:
    found = [
        where(path, n, line)
        for path in text_files()
        if path != SELF
        for n, line in enumerate(lines_of(path), start=1)
        if DESIGN_CITATION.search(line) or SHARED_PATH.search(line)
    ]
    assert not found, "cite docs/design.md (or its detail pages) instead:\n" + "\n".join(found)


def _named_path_exists(candidate: str) -> bool:
    """A path a text names, relative to the repository root (a trailing '.' ends a sentence)."""
    candidate = candidate.rstrip(".")
    return (ROOT / candidate).exists()


def _is_checked(candidate: str) -> bool:
    """Folders (a trailing /) and files with a known suffix; `gateway/status` is a topic."""
    candidate = candidate.rstrip(".")
    return candidate.endswith("/") or Path(candidate).suffix in CHECKED_SUFFIXES


def test_every_named_path_exists() -> None:
    missing = [
        where(path, n, f"{m.group(1)} does not exist")
        for path in text_files()
        if path != SELF
        for n, line in enumerate(lines_of(path), start=1)
        for m in REPO_PATH.finditer(line)
        if _is_checked(m.group(1)) and not _named_path_exists(m.group(1))
    ]
    assert not missing, "\n".join(missing)


def github_anchor(heading: str) -> str:
    """The `#anchor` GitHub gives a markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors_of(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out: set[str] = set()
    fenced = False
    for line in lines_of(path):
        if line.startswith("```"):
            fenced = not fenced
        if fenced or not line.startswith("#"):
            continue
        base = github_anchor(line.lstrip("#"))
        count = seen.get(base, 0)
        out.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return out


def _link_problem(md: Path, target: str) -> str | None:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, rayon:
        return None
    file_part, _, anchor = target.partition("#")
    dest = (md.parent / file_part).resolve() if file_part else md
    if not dest.exists():
        return f"link to {target}: {file_part} does not exist"
    if anchor and dest.suffix == ".md" and anchor not in anchors_of(dest):
        return f"link to {target}: no heading #{anchor} in {shown(dest)}"
    return None


def test_every_markdown_link_resolves() -> None:
    broken = [
        where(path, n, problem)
        for path in text_files()
        if path.suffix == ".md"
        for n, line in enumerate(lines_of(path), start=1)
        for m in MD_LINK.finditer(line)
        if (problem := _link_problem(path, m.group(1))) is not None
    ]
    assert not broken, "\n".join(broken)


def user_facing_files() -> Iterator[Path]:
    yield from sorted((ROOT / "docs").glob("*.md"))
    yield ROOT / "README.md"
    yield ROOT / "config.example.yaml"
    yield from sorted((ROOT / "rules").glob("*.yaml"))
    for name in ("deploy", "firmware_configs"):
        yield from (p for p in sorted((ROOT / name).rglob("*")) if p.is_file())


def string_literals(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of every string literal of a Python file, docstrings included."""
    source = path.read_text(encoding="utf-8")
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.STRING or tok.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
            for offset, text in enumerate(tok.string.splitlines()):
                yield tok.start[0] + offset, text


def _mentions_an_issue(text: str) -> bool:
    return ISSUE_NUMBER.search(URL.sub("", text)) is not None


def test_no_issue_numbers_in_what_users_read() -> None:
    found = [
        where(path, n, line)
        for path in user_facing_files()
        for n, line in enumerate(lines_of(path), start=1)
        if _mentions_an_issue(line)
    ]
    for name in ("gateway", "rayon_tooling"):
        for path in sorted((ROOT / name).rglob("*.py")):
            found += [where(path, n, s) for n, s in string_literals(path) if _mentions_an_issue(s)]
    assert not found, "say what it is, not which issue asked for it:\n" + "\n".join(found)


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """The patterns themselves: a citation, a dangling path, an issue number, an anchor."""
    assert DESIGN_CITATION.search("see DESIGN" + ".md §5") and DESIGN_CITATION.search("DESIGN §4")
    assert SHARED_PATH.search("../shared" + "/DESIGN.md")
    assert not SHARED_PATH.search("../shared" + "/datasets/uci_ble_rssi")
    assert [m.group(1) for m in REPO_PATH.finditer("see docs/nope.md and /etc/rayon/x")] == [
        "docs/nope.md"
    ]
    assert not _named_path_exists("docs/nope.md") and _named_path_exists("docs/design.md.")
    assert not _is_checked("gateway/status") and _is_checked("deploy/mosquitto/")
    assert _mentions_an_issue("every figure of issue 8") and _mentions_an_issue("(issue 16)")
    assert not _mentions_an_issue("see https://github.com/eclipse/paho.mqtt.python/issues/123")
    assert github_anchor("`gateway/status` — gateway") == "gatewaystatus--gateway"
    assert github_anchor("7. CLI (`rayon --help`)") == "7-cli-rayon---help"
    md = tmp_path / "a.md"
    md.write_text("# Title\n\n[x](a.md#nope) [y](a.md#title)\n", encoding="utf-8")
    assert _link_problem(md, "a.md#title") is None
    assert _link_problem(md, "a.md#nope") is not None
