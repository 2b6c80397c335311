"""`rayon console`: the store live in a browser — map, offers, rules, KPIs (docs/console.md).

Its own process, user and systemd unit, so that a console fault never stops offers.  Live data
comes from the store's broker (its own `rayon-<store>-console` login, the `console/*` topics,
`zones/+/occupancy` and `gateway/status`); history is read from the database, never written.
No numpy, shapely or matplotlib here (pyproject.toml's import-linter contract).
"""
