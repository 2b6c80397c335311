"""The console's logins: signed session cookies, CSRF nonces, login rate limits, the audit log.

A session is a cookie `rayon_session` = base64url(JSON {u, r, exp, csrf}) "." base64url(HMAC-
SHA256 over that JSON), keyed with 32 random bytes read from `console.secret_file` (created
0600 on first start, never in config.yaml). A session ends at its `exp` (`console.session_ttl`)
or at its logout: the logout revokes the session's nonce (`Revoked`, kept in memory and in a
`<secret_file>.revoked` file beside the key until the session would have expired), so a copy of
the cookie taken before is refused too. The login form itself
carries a nonce signed the same way in a short-lived `rayon_login` cookie (double submit), so
that every POST form of the console has a CSRF token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.clock import Clock
from gateway.console.users import Role
from gateway.errors import RuntimeFailure

log = logging.getLogger(__name__)

SESSION_COOKIE = "rayon_session"
LOGIN_COOKIE = "rayon_login"
LOGIN_NONCE_TTL_S = 3600.0
SECRET_BYTES = 32


def load_secret(path: Path) -> bytes:
    """The session key in `path`; created with 32 random bytes, mode 0600, when missing."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path)
    except OSError as exc:
        raise RuntimeFailure(
            f"cannot create the console's session key {path}: {exc}; create its folder "
            "(writable by the console's user) or set console.secret_file"
        ) from exc
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_bytes(SECRET_BYTES))
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    try:
        if path.stat().st_mode & 0o077:  # whoever reads it can forge any session
            log.warning(
                "the console's session key %s is readable by other users: `chmod 600 %s`, "
                "then delete it to make a new one if anyone may have read it",
                path,
                path,
            )
        key = path.read_bytes()
    except OSError as exc:
        raise RuntimeFailure(f"cannot read the console's session key {path}: {exc}") from exc
    if len(key) < 16:
        raise RuntimeFailure(
            f"the console's session key {path} holds {len(key)} bytes (at least 16 needed): "
            "delete it and the console makes a new one (every session then ends)"
        )
    return key


@dataclass(frozen=True, slots=True)
class Session:
    """Who is logged in, with which role, until when, and the nonce their forms carry."""

    user: str
    role: Role
    expires_at: float
    csrf: str


class Signer:
    """Signs and checks values with HMAC-SHA256 under the console's secret."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def sign(self, data: dict[str, Any]) -> str:
        """`data` as `payload.mac`, both base64url without padding."""
        raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
        mac = hmac.new(self._key, raw, hashlib.sha256).digest()
        return f"{_b64(raw)}.{_b64(mac)}"

    def unsign(self, value: str) -> dict[str, Any] | None:
        """The data of a value `sign` made with this key, or None (forged, truncated, other)."""
        payload, sep, mac = value.partition(".")
        if not sep:
            return None
        try:
            raw, given = _unb64(payload), _unb64(mac)
        except ValueError:
            return None
        wanted = hmac.new(self._key, raw, hashlib.sha256).digest()
        if not hmac.compare_digest(given, wanted):
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64url") from exc


class Revoked:
    """Sessions ended by a logout before their expiry: nonce → expiry, in memory and, when
    `path` is given, in that file (0600, rewritten atomically) so that a restart keeps them.
    An entry is forgotten once its session would have expired: the set never outgrows the
    logouts of one `session_ttl`."""

    def __init__(self, clock: Clock, path: Path | None = None) -> None:
        self._clock, self._path = clock, path
        self._until: dict[str, float] = self._load()

    def add(self, nonce: str, expires_at: float) -> None:
        """Revoke the session of `nonce` (valid until `expires_at`)."""
        now = self._clock.now()
        self._until = {n: t for n, t in self._until.items() if t > now}
        self._until[nonce] = expires_at
        self._save()

    def __contains__(self, nonce: str) -> bool:
        return nonce in self._until

    def __len__(self) -> int:
        return len(self._until)

    def _load(self) -> dict[str, float]:
        if self._path is None or not self._path.exists():
            return {}
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
            return {str(n): float(t) for n, t in data.items()}
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.error("console: cannot read the revoked sessions %s (%s)", self._path, exc)
            return {}

    def _save(self) -> None:
        if self._path is None:
            return
        tmp = self._path.with_name(f".{self._path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(self._until, out)
            os.replace(tmp, self._path)
        except OSError as exc:  # still revoked in memory, until a restart
            tmp.unlink(missing_ok=True)
            log.error("console: cannot write the revoked sessions %s (%s)", self._path, exc)


class Sessions:
    """Issues and reads session cookies and login nonces, by the injected clock."""

    def __init__(
        self, signer: Signer, clock: Clock, ttl: float, revoked: Revoked | None = None
    ) -> None:
        self._signer, self._clock, self._ttl = signer, clock, ttl
        self._revoked = revoked if revoked is not None else Revoked(clock)

    def issue(self, user: str, role: Role) -> tuple[Session, str]:
        """A new session and its cookie value."""
        session = Session(user, role, self._clock.now() + self._ttl, secrets.token_urlsafe(24))
        data = {"u": user, "r": role.value, "exp": session.expires_at, "csrf": session.csrf}
        return session, self._signer.sign(data)

    def read(self, cookie: str | None) -> Session | None:
        """The session of a cookie, or None when missing, forged or expired."""
        data = self._signer.unsign(cookie) if cookie else None
        if data is None:
            return None
        try:
            session = Session(
                str(data["u"]), Role(data["r"]), float(data["exp"]), str(data["csrf"])
            )
        except (KeyError, ValueError, TypeError):
            return None
        return session if self.live(session) else None

    def live(self, session: Session) -> bool:
        """Whether `session` has neither expired nor been logged out."""
        return session.expires_at > self._clock.now() and session.csrf not in self._revoked

    def revoke(self, session: Session) -> None:
        """End `session` now (logout): its cookie, and every copy of it, is refused."""
        self._revoked.add(session.csrf, session.expires_at)

    def login_nonce(self) -> tuple[str, str]:
        """A nonce for the login form and the cookie value that vouches for it."""
        nonce = secrets.token_urlsafe(24)
        cookie = self._signer.sign({"n": nonce, "exp": self._clock.now() + LOGIN_NONCE_TTL_S})
        return nonce, cookie

    def login_nonce_ok(self, cookie: str | None, given: str | None) -> bool:
        """Whether the login form's nonce matches its cookie (signed, not expired)."""
        data = self._signer.unsign(cookie) if cookie else None
        if data is None or not given:
            return False
        expires = data.get("exp")
        if not isinstance(expires, (int, float)) or expires <= self._clock.now():
            return False
        return hmac.compare_digest(str(data.get("n", "")), given)

    @property
    def ttl(self) -> float:
        return self._ttl


def csrf_ok(session: Session, given: str | None) -> bool:
    """Whether a POSTed form's `csrf` field is the session's nonce."""
    return bool(given) and hmac.compare_digest(session.csrf, given or "")


@dataclass(slots=True)
class RateLimiter:
    """At most `limit` failures per key within `window` seconds; beyond, refused until the
    oldest failure leaves the window."""

    clock: Clock
    limit: int = 5
    window: float = 300.0
    max_keys: int = 10_000  # a flood of made-up names forgets the oldest, never grows memory
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _told: dict[str, float] = field(default_factory=dict)  # key → its lockout's first failure

    def retry_after(self, key: str) -> float | None:
        """Seconds until `key` may try again, or None when it may now."""
        times = self._pruned(key)
        if len(times) < self.limit:
            return None
        return max(1.0, times[0] + self.window - self.clock.now())

    def failed(self, key: str) -> None:
        """Count one failure of `key`."""
        self._failures[key] = self._pruned(key)
        self._failures[key].append(self.clock.now())
        while len(self._failures) > self.max_keys:
            del self._failures[next(iter(self._failures))]

    def first_refusal(self, key: str) -> bool:
        """Whether `key`, refused now, is refused for the first time in this lockout (so
        that a client hammering while locked out writes one audit line, not one a try)."""
        times = self._pruned(key)
        if not times or self._told.get(key) == times[0]:
            return False
        self._told[key] = times[0]
        while len(self._told) > self.max_keys:
            del self._told[next(iter(self._told))]
        return True

    @property
    def tracked(self) -> int:
        """How many keys have failures on record."""
        return len(self._failures)

    def _pruned(self, key: str) -> deque[float]:
        """`key`'s failures still in the window; a key with none left is forgotten."""
        times = self._failures.pop(key, deque())
        while times and times[0] <= self.clock.now() - self.window:
            times.popleft()
        if times:
            self._failures[key] = times
        return times


class AuditLog:
    """The console's login audit log: JSON Lines appended to `console.audit_log` (0600)."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self._path, self._clock = path, clock

    def write(self, event: str, client: str, **fields: str) -> None:
        """One line: time, event, client address, and e.g. the user name (never a password)."""
        line = {"at": self._clock.now(), "event": event, "client": client, **fields}
        # ASCII only: a name with U+2028, U+0085 or the like must not split the line for a
        # reader that splits on every Unicode line break (Python's str.splitlines does)
        data = (json.dumps(line, ensure_ascii=True) + "\n").encode()
        try:
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise RuntimeFailure(
                f"cannot write the console's audit log {self._path}: {exc}; create its folder "
                "(writable by the console's user) or set console.audit_log"
            ) from exc
        with os.fdopen(fd, "ab") as out:
            out.write(data)
