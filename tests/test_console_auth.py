"""The console's logins: passwords, rate limits, CSRF, sessions and their cookie, roles, the
audit log and the session key file — real files, the real app through Starlette's client."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from gateway.clock import ManualClock
from gateway.config.model import Config, FloorPlanImage, TlsConfig
from gateway.console.app import build_app, build_console, live_events
from gateway.console.auth import SESSION_COOKIE, RateLimiter, load_secret
from gateway.console.users import Role, UsersFile
from gateway.console.web import Console
from tests.consolekit import PASSWORDS, START, audit_lines, csrf_of, log_in, make_console
from tests.consolekit import console_config as _console_config


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return _console_config(tmp_path)


@pytest.fixture
def console(config: Config, clock: ManualClock) -> Console:
    return make_console(config, clock)


@pytest.fixture
def client(console: Console) -> Iterator[TestClient]:
    with TestClient(build_app(console), base_url="https://testserver") as c:
        yield c


def test_a_wrong_password_is_refused_and_audited_without_the_password(
    client: TestClient, config: Config
) -> None:
    response = log_in(client, "vera", "not-her-password")
    assert response.status_code == 401
    assert "Wrong user name or password" in response.text
    assert SESSION_COOKIE not in client.cookies
    lines = audit_lines(config)
    assert [(x["event"], x["user"], x["client"]) for x in lines] == [
        ("login_failed", "vera", "testclient")
    ]
    assert "not-her-password" not in config.console.audit_log.read_text()
    assert stat.S_IMODE(config.console.audit_log.stat().st_mode) == 0o600


def test_a_good_login_sets_a_strict_cookie_and_opens_the_pages(
    client: TestClient, config: Config
) -> None:
    response = log_in(client, "vera")
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = next(
        h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE)
    )
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= flags
    page = client.get("/")
    assert page.status_code == 200 and 'id="plan"' in page.text
    assert "vera (viewer)" in page.text
    assert [x["event"] for x in audit_lines(config)] == ["login_ok"]


def test_five_failures_lock_the_name_out_with_429_until_the_window_passes(
    client: TestClient, config: Config, clock: ManualClock
) -> None:
    for _ in range(5):
        assert log_in(client, "otto", "guess-guess").status_code == 401
    locked = log_in(client, "otto")  # even the right password, while locked out
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["retry-after"]) <= 300
    assert audit_lines(config)[-1]["event"] == "login_limited"
    clock.advance(301)
    assert log_in(client, "otto").status_code == 303


def test_failures_from_one_address_lock_it_out_for_every_name(client: TestClient) -> None:
    for name in ("a1", "a2", "a3", "a4", "a5"):
        assert log_in(client, name, "whatever-pw").status_code == 401
    assert log_in(client, "mark").status_code == 429


def test_a_post_without_the_csrf_token_is_refused_with_403(client: TestClient) -> None:
    client.get("/login")  # the login cookie is there, the form field is not
    no_field = client.post("/login", data={"name": "vera", "password": PASSWORDS["vera"]})
    assert no_field.status_code == 403 and "security token" in no_field.text
    wrong = client.post("/login", data={"name": "vera", "password": "x", "csrf": "forged"})
    assert wrong.status_code == 403
    assert log_in(client, "vera").status_code == 303
    logout = client.post("/logout", data={}, follow_redirects=False)
    assert logout.status_code == 403
    assert client.get("/", follow_redirects=False).status_code == 200  # still logged in


def test_logout_with_its_token_ends_the_session_and_is_audited(
    client: TestClient, config: Config
) -> None:
    log_in(client, "mark")
    token = csrf_of(client.get("/").text)
    out = client.post("/logout", data={"csrf": token}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert client.get("/", follow_redirects=False).status_code == 303
    assert [x["event"] for x in audit_lines(config)] == ["login_ok", "logout"]


@pytest.mark.parametrize("path", ["/live", "/state.json", "/kpis.json", "/kpis/rules.csv"])
def test_the_stream_and_the_data_need_a_session_401(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401 and "login" in response.json()["error"]


@pytest.mark.parametrize("path", ["/", "/rules", "/kpis", "/visits/v-0123456789ab"])
def test_a_page_without_a_session_redirects_to_login(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next={path}"


def test_healthz_answers_without_login(client: TestClient) -> None:
    assert client.get("/healthz").text == "ok"


def test_a_viewer_gets_403_on_a_visit_trace_a_marketer_does_not(
    client: TestClient, console: Console
) -> None:
    log_in(client, "vera")
    page = client.get("/visits/v-0123456789ab")
    assert page.status_code == 403 and "marketer" in page.text
    client.cookies.clear()
    log_in(client, "mark")
    assert client.get("/visits/v-0123456789ab").status_code != 403


def test_a_session_ends_at_its_ttl(client: TestClient, clock: ManualClock, config: Config) -> None:
    log_in(client, "vera")
    clock.advance(config.console.session_ttl - 1)
    assert client.get("/", follow_redirects=False).status_code == 200
    clock.advance(2)
    assert client.get("/", follow_redirects=False).status_code == 303
    assert client.get("/state.json").status_code == 401


def test_a_forged_or_altered_cookie_is_no_session(client: TestClient) -> None:
    log_in(client, "vera")
    value = client.cookies[SESSION_COOKIE]
    payload, mac = value.split(".")
    client.cookies.clear()

    def status(cookie: str) -> int:
        response = client.get("/state.json", headers={"cookie": f"{SESSION_COOKIE}={cookie}"})
        code: int = response.status_code
        return code

    assert status(value) == 200
    assert status(payload[:-2] + "xx." + mac) == 401
    assert status(payload + "." + mac[:-2] + "AA") == 401
    assert status(payload) == 401


def test_the_session_key_is_created_0600_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "session.key"
    key = load_secret(path)
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret(path) == key


def test_a_session_survives_a_restart_with_the_same_key(
    client: TestClient, config: Config, clock: ManualClock
) -> None:
    log_in(client, "otto")
    with TestClient(build_app(make_console(config, clock)), base_url="https://testserver") as c2:
        cookie = f"{SESSION_COOKIE}={client.cookies[SESSION_COOKIE]}"
        assert c2.get("/state.json", headers={"cookie": cookie}).status_code == 200
        assert c2.get("/state.json").status_code == 401


def test_pages_carry_a_strict_content_security_policy(client: TestClient) -> None:
    page = client.get("/login")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"


def test_a_broken_users_file_is_a_503_page_not_a_crash(client: TestClient, config: Config) -> None:
    config.console.users_file.write_text("this line is no user\n")
    response = log_in(client, "vera")
    assert response.status_code == 503 and "users file" in response.text


def test_the_limiter_forgets_quiet_keys_and_holds_a_bounded_number(clock: ManualClock) -> None:
    limiter = RateLimiter(clock, limit=2, window=60.0, max_keys=3)
    limiter.failed("a")
    limiter.failed("a")
    assert limiter.retry_after("a") == 60.0
    clock.advance(30)
    assert limiter.retry_after("a") == 30.0
    for key in ("b", "c", "d"):
        limiter.failed(key)
    assert limiter.retry_after("a") is None  # the oldest key went to make room
    clock.advance(61)
    limiter.failed("e")
    assert limiter.retry_after("e") is None and limiter.tracked <= 3


def test_a_copy_of_the_cookie_is_refused_after_logout_even_after_a_restart(
    client: TestClient, config: Config, clock: ManualClock
) -> None:
    log_in(client, "mark")
    cookie = f"{SESSION_COOKIE}={client.cookies[SESSION_COOKIE]}"
    token = csrf_of(client.get("/").text)
    assert client.post("/logout", data={"csrf": token}, follow_redirects=False).status_code == 303
    client.cookies.clear()
    assert client.get("/state.json", headers={"cookie": cookie}).status_code == 401
    assert client.get("/", headers={"cookie": cookie}, follow_redirects=False).status_code == 303
    with TestClient(build_app(make_console(config, clock)), base_url="https://testserver") as c2:
        assert c2.get("/state.json", headers={"cookie": cookie}).status_code == 401
    revoked = config.console.secret_file.with_name(f"{config.console.secret_file.name}.revoked")
    assert stat.S_IMODE(revoked.stat().st_mode) == 0o600


def test_a_logout_ends_that_session_only(client: TestClient, console: Console) -> None:
    log_in(client, "vera")
    other = f"{SESSION_COOKIE}={client.cookies[SESSION_COOKIE]}"
    client.cookies.clear()
    log_in(client, "vera")
    token = csrf_of(client.get("/").text)
    client.post("/logout", data={"csrf": token}, follow_redirects=False)
    client.cookies.clear()
    assert client.get("/state.json", headers={"cookie": other}).status_code == 200


def test_revocations_are_forgotten_once_their_sessions_would_have_expired(
    client: TestClient, console: Console, clock: ManualClock, config: Config
) -> None:
    for name in ("vera", "mark"):
        log_in(client, name)
        client.post("/logout", data={"csrf": csrf_of(client.get("/").text)})
        clock.advance(config.console.session_ttl + 1)
    revoked = config.console.secret_file.with_name(f"{config.console.secret_file.name}.revoked")
    assert len(json.loads(revoked.read_text())) == 1


def test_a_removed_user_or_a_lowered_role_takes_effect_at_the_next_request(
    client: TestClient, config: Config
) -> None:
    log_in(client, "mark")
    assert client.get("/visits/v-0123456789ab").status_code != 403
    users = UsersFile(config.console.users_file)
    users.add("mark", Role.VIEWER, PASSWORDS["mark"])
    assert client.get("/visits/v-0123456789ab").status_code == 403
    users.remove("mark")
    assert client.get("/state.json").status_code == 401


def test_the_stream_of_a_logged_out_session_ends_at_its_next_event(console: Console) -> None:
    session, _cookie = console.sessions.issue("vera", Role.VIEWER)

    async def read() -> list[str]:
        async with asyncio.timeout(20):  # a bound for the run, not the behaviour tested
            stream = live_events(console, session)
            seen = [(await anext(stream))["event"]]
            console.sessions.revoke(session)
            console.fanout.publish({"event": "ticker", "data": {}})
            seen += [e["event"] async for e in stream]
            return seen

    assert asyncio.run(read()) == ["snapshot"]
    assert console.fanout.clients == 0


def test_without_a_users_file_the_console_starts_and_its_login_page_says_so(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    config = _console_config(tmp_path)
    with TestClient(build_app(build_console(config, clock)), base_url="https://testserver") as c:
        assert "rayon console user add" in caplog.text
        page = c.get("/login")
        assert page.status_code == 200 and "no console user" in page.text
        config.console.users_file.write_text("alice:ops\n")
        page = c.get("/login")
        assert "users file cannot be read" in page.text and "alice" not in page.text
        assert str(config.console.users_file) in caplog.text


@pytest.mark.parametrize("breaker", ["\n", "\r", "\u2028", "\u2029", "\x85", "\x0b", "\x1c"])
def test_a_user_name_cannot_forge_an_audit_line(
    client: TestClient, config: Config, breaker: str
) -> None:
    forged = breaker + '{"at": 0, "event": "login_ok", "user": "otto"}'
    log_in(client, "x" + forged, "whatever-pw")
    lines = audit_lines(config)
    assert [x["event"] for x in lines] == ["login_failed"] and lines[0]["user"] == "x" + forged


def test_the_login_redirect_keeps_the_page_as_one_query_value(client: TestClient) -> None:
    response = client.get("/visits/v-1&next=evil", follow_redirects=False)
    assert response.headers["location"] == "/login?next=/visits/v-1%26next%3Devil"


def test_the_stream_says_when_the_console_loses_the_broker_and_gets_it_back(
    console: Console,
) -> None:
    session, _cookie = console.sessions.issue("vera", Role.VIEWER)
    up = [False]

    async def read() -> list[tuple[str, Any]]:
        async with asyncio.timeout(20):  # a bound for the run, not the behaviour tested
            stream = live_events(console, session, lambda: up[0])
            first = await anext(stream)
            seen: list[tuple[str, Any]] = [("snapshot", json.loads(first["data"])["broker"])]
            up[0] = True
            console.fanout.publish({"event": "ticker", "data": 1})
            for _ in range(2):
                event = await anext(stream)
                seen.append((event["event"], json.loads(event["data"])))
            await stream.aclose()
            return seen

    assert asyncio.run(read()) == [
        ("snapshot", False),
        ("broker", {"connected": True}),
        ("ticker", 1),
    ]


@pytest.mark.parametrize("name", ["plan.html", "plan.xhtml", "plan", "plan.js"])
def test_a_floor_picture_that_is_no_picture_is_not_served(
    tmp_path: Path, clock: ManualClock, name: str
) -> None:
    response = _floorplan(tmp_path, clock, name, "<script>alert(document.cookie)</script>")
    assert response.status_code == 404 and "alert" not in response.text
    assert ".png" in response.text


def test_a_floor_picture_is_served_with_its_type_nosniff_and_sandboxed(
    tmp_path: Path, clock: ManualClock
) -> None:
    svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 4 2"/>'
    response = _floorplan(tmp_path, clock, "plan.SVG", svg)
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers.get_list("content-security-policy")


def _floorplan(tmp_path: Path, clock: ManualClock, name: str, text: str) -> httpx.Response:
    """What `/floorplan` answers a logged-in user when the floor plan's picture is a file
    `name` holding `text`."""
    picture = tmp_path / name
    picture.write_text(text)
    plan = FloorPlanImage(image=picture, origin=(0.0, 25.0), metres_per_pixel=1.0)
    console = make_console(_console_config(tmp_path, floor_plan=plan), clock)
    with TestClient(build_app(console), base_url="https://testserver") as client:
        log_in(client, "vera")
        response: httpx.Response = client.get("/floorplan")
    return response


def test_x_forwarded_for_does_not_change_the_client_the_limits_count(
    client: TestClient, config: Config
) -> None:
    for i in range(5):
        form = client.get("/login")
        data = {"name": f"n{i}", "password": "whatever-pw", "csrf": csrf_of(form.text)}
        headers = {"x-forwarded-for": f"10.0.0.{i}", "x-real-ip": f"10.0.1.{i}"}
        assert client.post("/login", data=data, headers=headers).status_code == 401
    assert log_in(client, "vera").status_code == 429
    assert {x["client"] for x in audit_lines(config)} == {"testclient"}


def test_a_session_key_others_may_read_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "session.key"
    load_secret(path)
    assert "readable by other users" not in caplog.text
    path.chmod(0o644)
    load_secret(path)
    assert "readable by other users" in caplog.text and "chmod 600" in caplog.text


def test_a_locked_out_client_hammering_writes_one_audit_line_per_lockout(
    client: TestClient, config: Config, clock: ManualClock
) -> None:
    for _ in range(5):
        log_in(client, "otto", "guess-guess")
    for _ in range(30):
        assert log_in(client, "otto", "guess-guess").status_code == 429
    events = [x["event"] for x in audit_lines(config)]
    assert events == ["login_failed"] * 5 + ["login_limited"]
    clock.advance(301)
    for _ in range(6):
        log_in(client, "otto", "guess-guess")
    assert [x["event"] for x in audit_lines(config)][6:] == ["login_failed"] * 5 + ["login_limited"]


def test_with_tls_every_answer_asks_browsers_to_keep_to_https(
    tmp_path: Path, clock: ManualClock, client: TestClient
) -> None:
    assert "strict-transport-security" not in client.get("/login").headers  # loopback http
    tls = TlsConfig(cert_file=tmp_path / "cert.pem", key_file=tmp_path / "key.pem")
    (tmp_path / "tls").mkdir()
    console = make_console(_console_config(tmp_path / "tls", tls=tls), clock)
    with TestClient(build_app(console), base_url="https://testserver") as c:
        assert c.get("/login").headers["strict-transport-security"] == "max-age=31536000"
        assert c.get("/healthz").headers["strict-transport-security"] == "max-age=31536000"
