"""The console's users file: scrypt hashes, roles, malformed lines, mode 0600, live reload."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gateway.console.users import (
    Role,
    User,
    UsersFile,
    hash_password,
    verify_password,
)
from gateway.errors import InvalidInput


def test_a_hash_round_trips_and_rejects_another_password() -> None:
    encoded = hash_password("correct horse")
    scheme, n, r, p, salt, digest = encoded.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert len(salt) == 24 and len(digest) == 44  # 16 and 32 bytes in base64
    assert verify_password(encoded, "correct horse")
    assert not verify_password(encoded, "correct horse ")
    assert hash_password("correct horse") != encoded  # a fresh salt each time
    assert not verify_password("md5$abc", "correct horse")


def test_roles_are_ordered() -> None:
    assert Role.OPS.allows(Role.MARKETER) and Role.OPS.allows(Role.VIEWER)
    assert Role.MARKETER.allows(Role.MARKETER) and not Role.MARKETER.allows(Role.OPS)
    assert not Role.VIEWER.allows(Role.MARKETER)


def test_users_authenticate_with_their_own_password_only(tmp_path: Path) -> None:
    users = UsersFile(tmp_path / "users")
    users.add("alice", Role.MARKETER, "s3cret-alice")
    users.add("bob", "viewer", "s3cret-bob")
    assert users.authenticate("alice", "s3cret-alice") == User("alice", Role.MARKETER)
    assert users.authenticate("alice", "s3cret-bob") is None
    assert users.authenticate("carol", "s3cret-alice") is None
    assert users.users() == [User("alice", Role.MARKETER), User("bob", Role.VIEWER)]


def test_the_file_is_private_and_holds_no_password(tmp_path: Path) -> None:
    path = tmp_path / "users"
    UsersFile(path).add("alice", Role.OPS, "s3cret-alice")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text(encoding="utf-8")
    assert text.startswith("alice:ops:scrypt$16384$8$1$") and "s3cret" not in text


def test_adding_a_user_again_replaces_their_line(tmp_path: Path) -> None:
    users = UsersFile(tmp_path / "users")
    users.add("alice", Role.VIEWER, "old-password")
    users.add("bob", Role.VIEWER, "bob-password")
    users.add("alice", Role.OPS, "new-password")
    lines = (tmp_path / "users").read_text(encoding="utf-8").splitlines()
    assert [line.split(":")[:2] for line in lines] == [["alice", "ops"], ["bob", "viewer"]]
    assert users.authenticate("alice", "old-password") is None
    assert users.authenticate("alice", "new-password") == User("alice", Role.OPS)


def test_removing_a_user(tmp_path: Path) -> None:
    users = UsersFile(tmp_path / "users")
    users.add("alice", Role.VIEWER, "pw-alice")
    assert users.remove("alice") is True
    assert users.remove("alice") is False
    assert users.users() == [] and users.authenticate("alice", "pw-alice") is None


def test_a_missing_file_has_no_users(tmp_path: Path) -> None:
    users = UsersFile(tmp_path / "nothing")
    assert users.users() == [] and users.authenticate("alice", "x") is None


def test_a_change_by_another_process_is_seen_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "users"
    console = UsersFile(path)
    UsersFile(path).add("alice", Role.VIEWER, "pw-alice")
    assert console.authenticate("alice", "pw-alice") == User("alice", Role.VIEWER)
    UsersFile(path).add("alice", Role.OPS, "pw-alice-2")
    os.utime(path, ns=(1, 1))  # a new mtime, whatever the file system's resolution
    assert console.authenticate("alice", "pw-alice") is None
    assert console.authenticate("alice", "pw-alice-2") == User("alice", Role.OPS)


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ("alice viewer", "two ':' expected"),
        ("alice:admin:" + hash_password("x"), "unknown role 'admin'"),
        ("alice:viewer:plain-text-password", "not a `scrypt"),
        ("al ice:viewer:" + hash_password("x"), "user name must be"),
    ],
)
def test_a_malformed_line_names_its_file_and_line(tmp_path: Path, line: str, what: str) -> None:
    path = tmp_path / "users"
    good = "bob:viewer:" + hash_password("pw")
    path.write_text(f"# the console's users\n{good}\n\n{line}\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as caught:
        UsersFile(path).authenticate("bob", "pw")
    message = str(caught.value)
    assert message.startswith(f"{path}:4: ") and what in message
    assert "plain-text-password" not in message
    with pytest.raises(InvalidInput, match=f"{path}:4: "):
        UsersFile(path).add("carol", Role.VIEWER, "pw")  # never rewrites what it cannot read
    assert path.read_text(encoding="utf-8").count("\n") == 4


def test_a_user_listed_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "users"
    line = "bob:viewer:" + hash_password("pw")
    path.write_text(f"{line}\n{line}\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match=f"{path}:2: user 'bob' is listed twice"):
        UsersFile(path).users()


def test_a_bad_user_name_or_role_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="user name must be"):
        UsersFile(tmp_path / "users").add("a:b", Role.VIEWER, "pw")
    with pytest.raises(
        InvalidInput, match=r"unknown role 'admin' \(roles: viewer, marketer, ops\)"
    ):
        UsersFile(tmp_path / "users").add("alice", "admin", "pw")
    assert not (tmp_path / "users").exists()


@pytest.mark.parametrize(
    "name", ["eve:ops", "eve\nmallory:ops:scrypt$1", "eve\rx", "#eve", "", "e" * 65, "ève", "a b"]
)
def test_a_name_that_would_break_or_forge_a_line_is_refused(tmp_path: Path, name: str) -> None:
    users = UsersFile(tmp_path / "users")
    users.add("alice", Role.VIEWER, "alice-pass-123")
    before = users.path.read_text()
    with pytest.raises(InvalidInput, match="user name must be"):
        users.add(name, Role.OPS, "eve-pass-1234")
    assert users.path.read_text() == before
    assert [u.name for u in users.users()] == ["alice"]
