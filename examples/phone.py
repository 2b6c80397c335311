"""A reference app client for Rayon's MQTT contract (docs/mqtt.md), in about 150 lines.

    python examples/phone.py --host 192.168.1.10 --store paris-11 --token k3v9q2x7m1p8 \
        --password-file app.secret --tls-ca ca.crt --port 8883 [--sightings beacons.json]

It does what a store app must do:
- log in with its delivery token as the username and keep a persistent MQTT v5 session
  (a stable client id, clean_start false, a session expiry), so that offers published while
  the phone is offline wait at the broker until it comes back (or until they expire);
- subscribe to its own `rayon/<store>/offers/<token>` at QoS 1 whenever the broker has no
  session for it (the first time, after a week away, after a broker crash), and show each
  offer once: the offer `id` is the idempotency key, and the ids already shown are kept in a
  small file so a restart does not show an offer twice;
- confirm every offer it receives at once with feedback `delivered`, a repeated id too: the
  gateway sends an offer again (after a broker restart) until it hears `delivered`;
- optionally (`--sightings FILE`, a JSON list of beacons) report the store beacons it hears
  every few seconds, as an iOS app ranging in the background would (mode B).
Ctrl-C (or SIGTERM) disconnects cleanly.  Needs only paho-mqtt >= 2.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

SEEN_MAX = 1000  # ids remembered; offers expire within days, so this is plenty


class Phone:
    """One app installation: its token, its topics and the offer ids it has shown."""

    def __init__(self, args: argparse.Namespace) -> None:
        base = f"{args.prefix}/{args.store}"
        self.offers = f"{base}/offers/{args.token}"
        self.feedback = f"{base}/feedback/{args.token}"
        self.sightings = f"{base}/phones/{args.token}/sightings"
        self.seen_file = Path(args.seen_file or f".rayon-phone-{args.token}.seen.json")
        self.seen: list[str] = self._load_seen()
        self.client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"rayon-app-{args.token}",  # stable: the broker keys the session on it
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        password = Path(args.password_file).read_text().strip() if args.password_file else None
        self.client.username_pw_set(args.token, password)
        if args.tls_ca:
            self.client.tls_set(ca_certs=args.tls_ca)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _load_seen(self) -> list[str]:
        try:
            ids = json.loads(self.seen_file.read_text())
        except (OSError, ValueError):
            return []
        return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []

    def _remember(self, offer_id: str) -> None:
        self.seen = [*self.seen, offer_id][-SEEN_MAX:]
        tmp = self.seen_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.seen))
        tmp.replace(self.seen_file)  # atomic: a crash never leaves a half-written file

    def connect(self, host: str, port: int, session_expiry_s: int) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = session_expiry_s
        self.client.connect(host, port, keepalive=30, clean_start=False, properties=props)
        self.client.loop_start()

    def _on_connect(self, client: Client, _u: Any, flags: Any, code: Any, _p: Any) -> None:
        if code.is_failure:
            print(f"# connection refused: {code}", flush=True)
            return
        # A resumed session has the subscription; a new one (first launch, a week away, a
        # broker that lost it in a crash) has not: subscribe then.
        if not flags.session_present:
            client.subscribe(self.offers, qos=1)
        resumed = "resumed" if flags.session_present else "new"
        print(f"# connected ({resumed} session)", flush=True)

    def _on_subscribe(self, _c: Client, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
        if any(code.is_failure for code in codes):  # e.g. the broker's ACL says no
            print(f"# subscription to {self.offers} refused: {codes[0]}", flush=True)
        else:
            print(f"# subscribed to {self.offers}", flush=True)

    def _on_message(self, _c: Client, _u: Any, message: MQTTMessage) -> None:
        try:
            offer = json.loads(message.payload)
            offer_id = offer["id"]
        except (ValueError, KeyError, TypeError):
            print(f"# ignored a message that is not an offer on {message.topic}", flush=True)
            return
        if offer.get("type") != "offer":
            return
        if offer_id in self.seen:  # at least once: the same offer may come again; show it
            self.send_feedback(offer_id, "delivered")  # once, but confirm every copy
            return
        self._remember(offer_id)
        code = f" [code {offer['code']}]" if offer.get("code") else ""
        print(f"offer {offer_id}: {offer.get('title')} — {offer.get('body')}{code}", flush=True)
        self.send_feedback(offer_id, "delivered")

    def send_feedback(self, offer_id: str, state: str) -> None:
        at = datetime.now().astimezone().isoformat(timespec="seconds")
        payload = {"type": "feedback", "v": 1, "offer": offer_id, "state": state, "at": at}
        self.client.publish(self.feedback, json.dumps(payload), qos=1)

    def report(self, beacons: list[dict[str, Any]]) -> None:
        payload = {"at": round(time.time(), 3), "beacons": beacons}
        self.client.publish(self.sightings, json.dumps(payload), qos=0)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="A reference Rayon app client (docs/mqtt.md).")
    p.add_argument("--host", default="localhost", help="the store's broker")
    p.add_argument("--port", type=int, default=1883, help="1883, or 8883 with --tls-ca")
    p.add_argument("--store", required=True, help="store id, e.g. paris-11")
    p.add_argument("--token", required=True, help="this app's delivery token (= MQTT username)")
    p.add_argument("--password-file", help="file holding this app's MQTT password")
    p.add_argument("--tls-ca", help="CA certificate of the broker's TLS listener")
    p.add_argument("--prefix", default="rayon", help="topic prefix (default: rayon)")
    p.add_argument("--seen-file", help="where shown offer ids are kept")
    p.add_argument("--session-expiry", type=int, default=7 * 86400, help="seconds (7 days)")
    p.add_argument("--sightings", type=Path, help="JSON list of beacons to report (mode B)")
    p.add_argument("--every", type=float, default=2.0, help="seconds between sightings")
    return p.parse_args(argv)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    beacons = json.loads(args.sightings.read_text()) if args.sightings else None
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    try:
        phone = Phone(args)
        phone.connect(args.host, args.port, args.session_expiry)
    except OSError as exc:  # unreadable password or CA file, broker unreachable
        print(f"phone: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        while True:
            time.sleep(args.every)
            if beacons is not None:
                phone.report(beacons)
    except KeyboardInterrupt:
        print("# bye", flush=True)
    finally:
        phone.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
