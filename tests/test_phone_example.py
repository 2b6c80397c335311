"""examples/phone.py, the reference app client, run as a user would against a private Mosquitto:
offers shown once per id across restarts, acknowledged once, queued while offline, sightings
in the format of docs/mqtt.md."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

import gateway.decode.inbound as inbound
import gateway.deliver.schemas as schemas
from gateway.config.load import load_config
from gateway.config.model import AnchorKind
from gateway.decode.jsonvalues import InboundError
from tests.broker import Mosquitto, Subscriber, free_port

pytestmark = pytest.mark.mqtt

ROOT = Path(__file__).resolve().parent.parent
PHONE = ROOT / "examples" / "phone.py"
TOKEN = "k3v9q2x7m1p8"
BASE = "rayon/paris-11"
WAIT_S = 10.0


class PhoneProcess:
    """examples/phone.py as a subprocess; its output lines are collected as they come."""

    def __init__(self, broker: Mosquitto, seen_file: Path, *extra: str) -> None:
        command = [sys.executable, str(PHONE), "--host", broker.host, "--port", str(broker.port)]
        command += ["--store", "paris-11", "--token", TOKEN, "--seen-file", str(seen_file)]
        self.proc = subprocess.Popen(
            [*command, *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_line(self, starts: str) -> str:
        """The first output line starting with `starts`, waiting for it if need be."""

        def found() -> str | None:
            return next((line for line in self.lines if line.startswith(starts)), None)

        with self._cond:
            if not self._cond.wait_for(lambda: found() is not None, timeout=WAIT_S):
                raise TimeoutError(f"no line {starts!r} from the phone; got {self.lines}")
            line = found()
            assert line is not None
            return line

    def offers_shown(self) -> list[str]:
        with self._cond:
            return [line.split()[1].rstrip(":") for line in self.lines if line.startswith("offer ")]

    def stop(self) -> int:
        """Ctrl-C, as a user would; the exit code."""
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(WAIT_S)
        self.wait_line("# bye")
        self._close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT_S)
        self._close()

    def _close(self) -> None:
        self._reader.join(WAIT_S)  # reads to the end of the output, then the pipe can go
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.proc.stdout.close()


@pytest.fixture
def phone(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Callable[..., PhoneProcess]]:
    started: list[PhoneProcess] = []

    def start(*extra: str) -> PhoneProcess:
        p = PhoneProcess(mosquitto, tmp_path / "seen.json", *extra)
        started.append(p)
        return p

    yield start
    for p in started:
        p.kill()


def an_offer(title: str = "-15 % sur les TV") -> tuple[str, bytes]:
    """A fresh offer (new id, valid for 3 h from now), as the gateway would publish it."""
    now = datetime.now().astimezone().replace(microsecond=0)
    offer = schemas.example("offer") | {
        "id": str(uuid.uuid4()),
        "title": title,
        "created_at": now.isoformat(),
        "expires_at": (now + timedelta(hours=3)).isoformat(),
    }
    return offer["id"], json.dumps(offer, ensure_ascii=False).encode()


def feedback_of(messages: list[Any]) -> list[dict[str, Any]]:
    """The feedback payloads received, each checked against the contract's schema."""
    check = Draft202012Validator(schemas.schema("feedback"))
    out = [json.loads(m.payload) for m in messages]
    for payload in out:
        check.validate(payload)
    return out


def test_an_offer_sent_twice_is_shown_once_and_each_copy_confirmed(
    phone: Callable[..., PhoneProcess], subscriber: Callable[..., Subscriber]
) -> None:
    feedback = subscriber(f"{BASE}/feedback/{TOKEN}")
    app = phone()
    app.wait_line("# subscribed")
    first, payload = an_offer()
    feedback.publish(f"{BASE}/offers/{TOKEN}", payload)
    feedback.publish(f"{BASE}/offers/{TOKEN}", payload)  # at-least-once: it may come again
    marker, marker_payload = an_offer("marker")
    feedback.publish(f"{BASE}/offers/{TOKEN}", marker_payload)
    app.wait_line(f"offer {marker}:")
    assert app.offers_shown() == [first, marker]
    assert "-15 % sur les TV" in app.wait_line(f"offer {first}:")
    acks = feedback_of(feedback.wait(3))
    assert [(a["offer"], a["state"]) for a in acks] == [
        (first, "delivered"),
        (first, "delivered"),  # the gateway resends until it hears it
        (marker, "delivered"),
    ]
    assert app.stop() == 0


def test_a_restarted_phone_shows_queued_offers_but_never_one_it_has_shown(
    phone: Callable[..., PhoneProcess], subscriber: Callable[..., Subscriber]
) -> None:
    feedback = subscriber(f"{BASE}/feedback/{TOKEN}")
    app = phone()
    app.wait_line("# subscribed")
    shown, payload = an_offer()
    feedback.publish(f"{BASE}/offers/{TOKEN}", payload)
    app.wait_line(f"offer {shown}:")
    assert app.stop() == 0
    # While the phone is away: the gateway resends the shown offer (say, after a crash) and
    # sends a new one; the broker keeps both in the phone's persistent session.
    feedback.publish(f"{BASE}/offers/{TOKEN}", payload)
    queued, queued_payload = an_offer("queued while offline")
    feedback.publish(f"{BASE}/offers/{TOKEN}", queued_payload)
    again = phone()
    again.wait_line(f"offer {queued}:")
    assert "resumed session" in again.wait_line("# connected")
    assert again.offers_shown() == [queued]
    # QoS 1 is at least once: the broker may hand the first phone's last offer again to the
    # second (its PUBACK lost with the first), and each copy is acknowledged, never shown
    acks = [a["offer"] for a in feedback_of(feedback.wait(3))]
    while queued not in acks and len(acks) < 6:
        acks = [a["offer"] for a in feedback_of(feedback.wait(len(acks) + 1))]
    assert acks[-1] == queued and acks.count(queued) == 1, acks
    assert set(acks[:-1]) == {shown} and len(acks) >= 3, acks
    assert again.stop() == 0


def test_sightings_are_reported_in_the_design_format(
    phone: Callable[..., PhoneProcess], subscriber: Callable[..., Subscriber], tmp_path: Path
) -> None:
    config = load_config(ROOT / "config.example.yaml")
    anchors = {a.beacon: a.id for a in config.anchors if a.kind is AnchorKind.BEACON and a.beacon}
    beacons = schemas.example("sightings")["beacons"]
    (tmp_path / "beacons.json").write_text(json.dumps(beacons))
    sightings = subscriber(f"{BASE}/phones/{TOKEN}/sightings", qos=0)
    before = time.time()
    app = phone("--sightings", str(tmp_path / "beacons.json"), "--every", "0.1")
    received = sightings.wait(2)
    check = Draft202012Validator(schemas.schema("sightings"))
    for message in received[:2]:
        report = json.loads(message.payload)
        check.validate(report)
        assert report["beacons"] == beacons and report["at"] >= before - 1
        parsed = inbound.parse_sightings(message.payload, TOKEN, time.time(), anchors)
        assert not isinstance(parsed, InboundError), parsed
        assert [(o.device, o.anchor) for o in parsed.observations] == [
            (f"phone:{TOKEN}", "beacon-04"),
            (f"phone:{TOKEN}", "beacon-05"),
        ]
    assert app.stop() == 0


def test_an_unreachable_broker_is_a_clear_error(tmp_path: Path) -> None:
    where = ["--host", "127.0.0.1", "--port", str(free_port())]
    who = ["--store", "paris-11", "--token", TOKEN, "--seen-file", str(tmp_path / "s.json")]
    done = subprocess.run(
        [sys.executable, str(PHONE), *where, *who],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1 and "cannot start" in done.stderr
