"""The `rayon` commands: name, help, and the module that drives each (docs/design.md §7).

Each module is named by a string and imported only when its command is parsed or run
(`gateway.cli.registry`); `rayon --help` imports none of them.  A module provides
`add_arguments(parser)` (the command's options; -c/-v are added for it) and `run(args) -> int`
(the exit code).
"""

from __future__ import annotations

from gateway.cli.registry import Command

COMMANDS: tuple[Command, ...] = (
    Command(
        "run",
        "run the gateway daemon (Bluetooth, scanner nodes, phones → offers)",
        "gateway.cli.run",
    ),
    Command(
        "demo",
        "the simulated reference store, live, with offers as a phone sees them",
        "gateway.cli.demo",
    ),
    Command(
        "check",
        "validate config and rules, run the rules' inline tests, warn about rules that cannot fire",
        "gateway.cli.check",
    ),
    Command(
        "doctor",
        "check the adapter, broker, database, config and clock, and say how to fix each failure",
        "gateway.ops.doctor",
        arguments="",
    ),
    Command(
        "scan",
        "scan with this machine's Bluetooth adapter and print each advert, decoded (JSON Lines)",
        "gateway.cli.scan",
        description="Scan with this machine's Bluetooth adapter, as `rayon run` does, and print "
        "one JSON line per advert: at, address, rssi, the decoded beacon with its canonical id, "
        "the scanner anchor this radio stands for (anchor) and the store beacon it is "
        "(beacon_anchor). Only the store's beacons unless --all. To check the adapter, and to "
        "measure rssi_at_1m and path_loss_exponent of the Pi's anchor.",
    ),
    Command(
        "decode",
        "decode advertisements: JSON Lines in, JSON Lines out",
        "gateway.cli.decode",
        description="Read JSON Lines {manufacturer_data, service_data} and write one decoded "
        "beacon (or null) per line. Decodes every beacon: no privacy filter.",
    ),
    Command(
        "simulate",
        "write a simulated trace of shoppers walking the store, or of a calibration walk "
        "(--calibration-walk)",
        "gateway.cli.simulate",
    ),
    Command(
        "calibrate",
        "fit rssi_at_1m and path_loss_exponent per anchor from a trace of store beacons heard "
        "by the scanners, or of a walk with known positions (--truth); with --map-out, learn "
        "the radio map (locate.radio_map) from a walk through every zone",
        "gateway.offline.calibraterun",
    ),
    Command(
        "replay",
        "run a recorded or simulated trace through the gateway",
        "gateway.offline.replayrun",
    ),
    Command(
        "backtest",
        "what the rules would have done on a trace, or on the gateway's recording beside a "
        "draft set (--recorded --rules DRAFT); publishes nothing, writes nothing",
        "gateway.offline.backtest.run",
    ),
    Command("report", "KPIs of a period from the database, and PNG charts", "gateway.report"),
    Command(
        "explain",
        "why a rule did or did not fire for a customer at a time",
        "gateway.offline.explain",
    ),
    Command(
        "forget",
        "erase everything held about a customer: database, saved live state, retained CRM record",
        "gateway.ops.forget",
    ),
    Command(
        "central",
        "collect every store's journal into the chain's PostgreSQL (one of the collectors)",
        "gateway.cli.central",
    ),
    Command(
        "bridge",
        "the store broker's bridge to the chain's central broker",
        children=(
            Command(
                "render",
                "write the Mosquitto bridge section from config.yaml (the store's client "
                "certificate, cleansession false, QoS 1, the store's chain topics only)",
                "gateway.cli.bridge",
            ),
        ),
    ),
    Command(
        "codes",
        "manage the code pools of `code_pool:` offers",
        children=(
            Command(
                "import",
                "add codes to a pool: one per line (CSV: the first column); "
                "blank lines and # comments are skipped",
                "gateway.cli.codes",
            ),
        ),
    ),
    Command(
        "firmware",
        "ESPHome configs of the store's ESP32 nodes",
        children=(
            Command(
                "render",
                "write one ESPHome config per scanner node and store beacon of the config "
                "(secrets stay in secrets.yaml)",
                "gateway.ops.firmware",
            ),
        ),
    ),
    Command(
        "rules",
        "the marketers' rule sets",
        children=(
            Command(
                "promote",
                "put a draft rule set live: checked, its backtest delta on the last recorded "
                "day shown, copied into rules_dir atomically (the old set kept), logged",
                "gateway.cli.promote",
            ),
        ),
    ),
    Command(
        "schema",
        "write JSON Schemas for editors",
        children=(
            Command(
                "rules", "the rule and policy schemas (yaml-language-server)", "gateway.cli.schema"
            ),
            Command(
                "config",
                "the config.yaml schema (yaml-language-server)",
                "gateway.cli.schema",
                run="run_config",
            ),
        ),
    ),
    # The product never imports rayon_tooling: this string is its one door, imported only when
    # `rayon console` serves the console; its module adds the `user` actions.
    Command(
        "console",
        "the store console: live map, rules, visit traces and KPIs in a browser "
        "(docs/console.md); `rayon console user add` manages its users",
        "gateway.cli.console",
    ),
    # `rayon bench …` is parsed; the module adds the benchmarks as the actions of `rayon bench`.
    Command(
        "bench", "measure speed (prints figures, asserts nothing)", "rayon_tooling.benchmarks.cli"
    ),
    Command(
        "customers",
        "manage the customer registry",
        children=(
            Command("import", "import customers from JSON Lines or CSV", "gateway.cli.customers"),
        ),
    ),
)
