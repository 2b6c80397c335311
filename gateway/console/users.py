"""The console's users: a file of names, roles and scrypt password hashes (docs/console.md).

One user per line, `name:role:scrypt$16384$8$1$<salt b64>$<hash b64>`; blank lines and lines
starting with `#` are ignored.  `rayon console user add` writes it (mode 0600); the console
reads it again whenever its modification time changes, so a user added or removed takes
effect without a restart.  Roles are ordered: a viewer sees, a marketer also reads the rules'
traces, ops also administer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from gateway.errors import InvalidInput

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES, HASH_BYTES = 16, 32
_SCHEME = "scrypt"
_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
NAME_RULE = "1 to 64 of A-Z a-z 0-9 _ . @ -"


class Role(StrEnum):
    """What a user may do, ordered: viewer < marketer < ops."""

    VIEWER = "viewer"
    MARKETER = "marketer"
    OPS = "ops"

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what `needed` may."""
        return _RANK[self] >= _RANK[needed]


_RANK = {Role.VIEWER: 0, Role.MARKETER: 1, Role.OPS: 2}


@dataclass(frozen=True, slots=True)
class User:
    """A console user, as the pages see them (never their hash)."""

    name: str
    role: Role


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * r * n, dklen=length
    )


def hash_password(pw: str) -> str:
    """`scrypt$16384$8$1$<salt>$<hash>` (standard base64) of `pw` with a fresh 16-byte salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(pw, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, HASH_BYTES)
    return f"{_SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def _parse_hash(encoded: str) -> tuple[int, int, int, bytes, bytes] | None:
    """(n, r, p, salt, hash) of an encoded hash, None when it is not one."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        return None
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, digest = (
            base64.b64decode(parts[4], validate=True),
            base64.b64decode(parts[5], validate=True),
        )
    except (ValueError, binascii.Error):
        return None
    if n < 2 or n & (n - 1) or not 0 < r <= 64 or not 0 < p <= 16 or n > 2**20 or not digest:
        return None
    return n, r, p, salt, digest


def verify_password(encoded: str, pw: str) -> bool:
    """Whether `pw` matches the encoded hash (compared in constant time); False for a hash
    that is not one of ours."""
    parsed = _parse_hash(encoded)
    if parsed is None:
        return False
    n, r, p, salt, digest = parsed
    return hmac.compare_digest(_scrypt(pw, salt, n, r, p, len(digest)), digest)


@dataclass(frozen=True, slots=True)
class _Entry:
    user: User
    hash: str


class UsersFile:
    """The users file at `path`, read again when its modification time changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._entries: dict[str, _Entry] = {}
        # checked for an unknown user, so that the answer takes as long as for a known one
        self._dummy = hash_password(secrets.token_urlsafe(16))

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when `password` is theirs, else None (an unknown user costs as much time
        as a wrong password)."""
        entry = self._current().get(name)
        ok = verify_password(entry.hash if entry is not None else self._dummy, password)
        return entry.user if ok and entry is not None else None

    def find(self, name: str) -> User | None:
        """The user of that name in the file now, or None."""
        entry = self._current().get(name)
        return entry.user if entry is not None else None

    def users(self) -> list[User]:
        """Every user, in file order."""
        return [e.user for e in self._current().values()]

    def add(self, name: str, role: Role | str, password: str) -> None:
        """Add a user, or replace the line of an existing one (role and password); the file
        is created with mode 0600 and rewritten atomically."""
        problem = _name_problem(name) or _role_problem(role)
        if problem:
            raise InvalidInput(problem)
        line = f"{name}:{Role(role).value}:{hash_password(password)}"
        lines = self._lines()
        found = [i for i, text in enumerate(lines) if _name_of(text) == name]
        if found:
            lines[found[0]] = line
            lines = [t for i, t in enumerate(lines) if i not in found[1:]]
        else:
            lines.append(line)
        self._write(lines)

    def remove(self, name: str) -> bool:
        """Remove a user; False when there was none of that name."""
        lines = self._lines()
        kept = [t for t in lines if _name_of(t) != name]
        if len(kept) == len(lines):
            return False
        self._write(kept)
        return True

    def _current(self) -> dict[str, _Entry]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._entries = None, {}
            return self._entries
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._entries = _parse(self.path, self.path.read_text(encoding="utf-8"))
            self._stamp = stamp
        return self._entries

    def _lines(self) -> list[str]:
        if not self.path.exists():
            return []
        text = self.path.read_text(encoding="utf-8")
        _parse(self.path, text)  # never rewrite a file we cannot read
        return text.splitlines()

    def _write(self, lines: list[str]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write("".join(f"{line}\n" for line in lines))
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _name_problem(name: str) -> str | None:
    if _NAME.fullmatch(name):
        return None
    return f"a console user name must be {NAME_RULE}, got {name!r}"


def _role_problem(role: str) -> str | None:
    return None if role in _RANK else f"unknown role {role!r} (roles: viewer, marketer, ops)"


def _name_of(line: str) -> str | None:
    text = line.strip()
    return None if not text or text.startswith("#") else text.split(":", 1)[0]


def _parse(path: Path, text: str) -> dict[str, _Entry]:
    """The users of the file's text; InvalidInput naming `file:line` on a malformed line."""
    out: dict[str, _Entry] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entry = _entry(line)
        if isinstance(entry, str):
            raise InvalidInput(
                f"{path}:{number}: {entry}; each line is `name:role:scrypt$…` (role viewer, "
                "marketer or ops): fix or remove the line, or write it again with "
                "`rayon console user add NAME --role ROLE`"
            )
        if entry.user.name in out:
            raise InvalidInput(
                f"{path}:{number}: user '{entry.user.name}' is listed twice: remove one line"
            )
        out[entry.user.name] = entry
    return out


def _entry(line: str) -> _Entry | str:
    """The entry of one line, or what is wrong with it (never echoing the hash)."""
    parts = line.split(":", 2)
    if len(parts) != 3:
        return "not `name:role:hash` (two ':' expected)"
    name, role, encoded = parts
    problem = _name_problem(name)
    if problem:
        return problem
    if _role_problem(role):
        return f"unknown role {role!r} for user '{name}' (roles: viewer, marketer, ops)"
    if _parse_hash(encoded) is None:
        return f"the password hash of user '{name}' is not a `scrypt$N$r$p$salt$hash` hash"
    return _Entry(User(name, Role(role)), encoded)
