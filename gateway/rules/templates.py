"""Offer texts (`then.offer.title`, `body`): literal text and placeholders, read once.

`{zone_name}`, `{store_name}`, `{code}` (only with a code or a code pool) and
`{customer.first_name}`, plus `{customer.attributes.NAME}` for an attribute config.yaml
declares (`customers.attributes`) as a string or a number.  Anything else between braces is
an error with a "did you mean"; no code runs from a rule file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from gateway.config.model import AttributeType
from gateway.config.yamlsrc import Node, did_you_mean
from gateway.rules.located import Reader
from gateway.rules.model import ATTRIBUTE_PREFIX, Attribute, Placeholder, Template

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_NAMES = [p.value for p in Placeholder]


def read_template(
    reader: Reader,
    text: str,
    node: Node | None,
    path: str,
    has_code: bool,
    declared: Mapping[str, AttributeType],
) -> Template:
    """The template of `text` (the value of `node`, at `path`); problems go to `reader`."""
    parts: list[str | Placeholder | Attribute] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(text):
        parts.append(match.string[pos : match.start()])
        pos = match.end()
        name = match[1].strip()
        if name.startswith(ATTRIBUTE_PREFIX):
            found = _attribute(reader, name.removeprefix(ATTRIBUTE_PREFIX), node, path, declared)
            parts.extend([found] if found else [])
        elif name not in _NAMES:
            hint = did_you_mean(f"{{{name}}}", [f"{{{n}}}" for n in _NAMES]) or (
                " (use {zone_name}, {store_name}, {code}, {customer.first_name} or "
                "{customer.attributes.NAME})"
            )
            reader.error(node, path, f"unknown placeholder '{{{name}}}'{hint}")
        elif name == Placeholder.CODE and not has_code:
            reader.error(node, path, "{code} is used but the offer sets no code nor code_pool")
        else:
            parts.append(Placeholder(name))
    parts.append(text[pos:])
    return Template(tuple(p for p in parts if p != ""))


def _attribute(
    reader: Reader,
    name: str,
    node: Node | None,
    path: str,
    declared: Mapping[str, AttributeType],
) -> Attribute | None:
    """`{customer.attributes.NAME}`: NAME must be declared in config.yaml, as a string or a
    number (a boolean reads as nothing in a sentence)."""
    kind = declared.get(name)
    if kind is None:
        hint = did_you_mean(name, declared) or (
            f" (declared: {', '.join(declared)})" if declared else ""
        )
        msg = (
            f"attribute '{name}' is not declared in config.yaml{hint}: add it under "
            f"customers.attributes (e.g. {name or 'order_id'}: string)"
        )
        reader.error(node, path, msg)
        return None
    if kind is AttributeType.BOOLEAN:
        msg = f"attribute '{name}' is a boolean: an offer text shows strings and numbers only"
        reader.error(node, path, msg)
        return None
    return Attribute(name)
