"""YAML syntax errors in a marketer's words, at the line of the mistake.

PyYAML reports where its scanner gave up, in its own vocabulary ("found character '\\t' that
cannot start any token", "mapping values are not allowed here"), often on the line *after*
the mistake: a key missing its colon is noticed when the next key arrives, an unclosed quote
at the end of the file.  `explain` reads the error together with the source text and returns
where the mistake is and what to do about it: a tab, a line indented to no level above, a
quote or bracket never closed, a missing colon, a colon inside an unquoted value.  Anything
else is reported at PyYAML's position with a plain hint, never with its jargon.

Pure and total: a malformed text or an unexpected error never makes it raise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

import yaml

_KEY = re.compile(r"^(\s*)(?:-\s+)?([^\s:#'\"][^:#]*?|'[^']*'|\"[^\"]*\")\s*:(?:\s|$)")
_WORD = re.compile(r"^(\s*)(?:-\s+)?(\S+)")
_CLOSERS = {"[": "]", "{": "}"}
# a value starting with * & ! % | > is read as a YAML sign (alias, anchor, tag, directive,
# block text): the scanner's context names which
_SIGNS = ("alias", "anchor", "tag", "directive", "block scalar")
_FALLBACK = (
    "YAML cannot read this line: check its quotes, brackets, colons and indentation "
    "(and those of the line above)"
)


class Spot(NamedTuple):
    """A 1-based position in the source text (`gateway.config.yamlsrc.Mark` takes it)."""

    line: int
    col: int


@dataclass(frozen=True, slots=True)
class _Source:
    """The lines of the text, 1-based, with the helpers the explanations need."""

    lines: tuple[str, ...]

    def line(self, number: int) -> str:
        return self.lines[number - 1] if 0 < number <= len(self.lines) else ""

    def previous(self, number: int) -> int | None:
        """The nearest line above `number` holding something (not blank, not a comment)."""
        for n in range(min(number, len(self.lines) + 1) - 1, 0, -1):
            if _content(self.line(n)):
                return n
        return None

    def indents_above(self, number: int) -> list[tuple[int, int]]:
        """(indent, line) of the lines that open the blocks around `number`, innermost first:
        the line above, then each line above it that is indented less than the last kept."""
        out: list[tuple[int, int]] = []
        n = self.previous(number)
        while n is not None:
            indent = _indent(self.line(n))
            if not out or indent < out[-1][0]:
                out.append((indent, n))
            if indent == 0:
                break
            n = self.previous(n)
        return out


def _content(line: str) -> str:
    stripped = line.strip()
    return "" if stripped.startswith("#") else stripped


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _first_word(line: str) -> str:
    """The key (or first word) a line starts with; `- key` for a list item."""
    match = _WORD.match(line)
    if match is None:
        return ""
    dash = "- " if line.lstrip().startswith("- ") else ""
    return dash + match[2].rstrip(":")


def _spaces(n: int) -> str:
    return "1 space" if n == 1 else f"{n} spaces"


def _mark(m: yaml.Mark | None) -> Spot:
    return Spot(m.line + 1, m.column + 1) if m is not None else Spot(1, 1)


def explain(exc: yaml.MarkedYAMLError, text: str) -> tuple[Spot, str]:
    """Where the mistake behind `exc` is in `text` (1-based), and how to fix it."""
    src = _Source(tuple(text.splitlines()))
    problem, context = exc.problem or "", exc.context or ""
    at = _mark(exc.problem_mark or exc.context_mark)
    try:
        found = _explained(src, problem, context, at, _mark(exc.context_mark))
    except (IndexError, ValueError):  # a text this module did not foresee: say it plainly
        found = None
    return found or (at, _FALLBACK)


def _explained(
    src: _Source, problem: str, context: str, at: Spot, opened: Spot
) -> tuple[Spot, str] | None:
    if "'\\t'" in problem:
        return at, "a tab character: YAML is indented with spaces only; replace the tab by spaces"
    if "quoted scalar" in context:
        quote = src.line(opened.line)[opened.col - 1 : opened.col] or '"'
        return opened, f"the quote {quote} opened here is never closed: end the text with {quote}"
    if "simple key" in context:
        return _missing_colon(src, opened.line)
    if "sequence entries are not allowed" in problem:
        return at, (
            "a '- ' cannot follow a key on the same line: start the list on the next line, "
            "indented, or put the whole value in quotes"
        )
    if "mapping values are not allowed" in problem:
        return _stray_colon(src, at)
    if context.startswith("while parsing a flow"):
        return _flow(src, problem, at, opened)
    if context.startswith("while parsing a block") or "<block end>" in problem:
        return _bad_indent(src, at.line)
    if any(word in context for word in _SIGNS):
        char = src.line(opened.line)[opened.col - 1 : opened.col]
        return opened, f"a value cannot start with '{char}' here: put the whole value in quotes"
    if "cannot start any token" in problem:
        char = src.line(at.line)[at.col - 1 : at.col]
        return at, f"a value cannot start with '{char}' here: put the whole value in quotes"
    if "alias" in problem:  # the composer's "found undefined alias"
        return at, "a value cannot start with '*' here: put the whole value in quotes"
    return None


def _missing_colon(src: _Source, number: int) -> tuple[Spot, str]:
    """A key without its colon (`name R`), or a colon without a space after it (`name:R`)."""
    line = src.line(number)
    indent = _indent(line)
    word = _first_word(line)
    glued = re.match(r"^\s*(?:-\s+)?([^\s:]+):(\S.*)$", line)
    if glued:
        key, value = glued[1], glued[2].strip()
        col = line.index(":", indent) + 2
        return Spot(number, col), f"put a space after ':' (write {key}: {value})"
    col = indent + len(word) + 1
    rest = line[col - 1 :].strip() or "value"
    word = word.removeprefix("- ")
    return Spot(number, col), f"missing ':' after '{word}' (write {word}: {rest})"


def _stray_colon(src: _Source, at: Spot) -> tuple[Spot, str]:
    """A colon the scanner did not expect: inside a value, after a key missing its own colon
    on the line above, or on a line indented under a key that already has a value."""
    line = src.line(at.line)
    key = _KEY.match(line)
    if key is not None and key.end() <= at.col - 1:
        value = line[key.end() :].strip()
        return at, (
            f"the value of '{key[2]}' holds ': ': put the whole value in quotes "
            f'(write {key[2]}: "{value}")'
        )
    above = src.previous(at.line)
    if above is None:
        return at, _FALLBACK
    if _KEY.match(src.line(above)) is None:
        return _missing_colon(src, above)
    return _under_a_value(src, at.line) or (at, _FALLBACK)


def _under_a_value(src: _Source, number: int) -> tuple[Spot, str] | None:
    """A line indented under the line above when that line's key already has its value."""
    above = src.previous(number)
    if above is None:
        return None
    line, prev = src.line(number), src.line(above)
    key = _KEY.match(prev)
    has_value = key is not None and prev[key.end() :].split(" #")[0].strip() != ""
    if not has_value or _indent(line) <= _indent(prev):
        return None
    word, sibling = _first_word(line), _first_word(prev)
    return Spot(number, _indent(line) + 1), (
        f"'{word}' is indented more than '{sibling}' above, which already has a value: "
        f"align '{word}' with '{sibling}' ({_spaces(_indent(prev))})"
    )


def _flow(src: _Source, problem: str, at: Spot, opened: Spot) -> tuple[Spot, str]:
    """Inside `[…]` or `{…}`: never closed, or an item missing its comma or a quote."""
    bracket = src.line(opened.line)[opened.col - 1 : opened.col]
    closer = _CLOSERS.get(bracket, "]")
    if at.line > opened.line or "<stream end>" in problem:
        return opened, f"the '{bracket}' opened here is never closed: add '{closer}' at its end"
    return at, (
        f"a comma, a quote or the closing '{closer}' is missing before this point "
        f"(the '{bracket}' opens at column {opened.col})"
    )


def _bad_indent(src: _Source, number: int) -> tuple[Spot, str]:
    """A line whose indentation matches no block above it."""
    under = _under_a_value(src, number)
    if under is not None:
        return under
    line = src.line(number)
    indent, word = _indent(line), _first_word(line)
    levels = src.indents_above(number)
    deeper = [lv for lv in levels if lv[0] > indent][-1:]
    shallower = [lv for lv in levels if lv[0] < indent][:1]
    choices = [
        f"{_spaces(n)} like '{_first_word(src.line(ln))}' on line {ln}"
        for n, ln in (*deeper, *shallower)
    ]
    fix = " or ".join(choices) if choices else "align it with the keys it belongs with"
    where = Spot(number, indent + 1)
    return where, (
        f"'{word}' is indented {_spaces(indent)}, which matches no line above: use {fix}"
    )
