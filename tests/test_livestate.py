"""The live state saved as its changes (`livestate`, `Pipeline.snapshot_changes`): whatever
the walk, the erasures, reloads and timeouts in between, the changes taken so far put back
together are the pipeline's whole snapshot; and the store keeps them so, on SQLite and on
PostgreSQL, one row per changed entry."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from gateway.config.model import VisitsConfig
from gateway.events import MqttInput
from gateway.identity.model import CustomerRegistry
from gateway.livestate import StateDelta, merge, whole
from gateway.pipeline import Output, Pipeline
from gateway.store.repo import Store
from gateway.zones.tracker import ZoneTracker
from rayon_tooling.benchmarks.workload import Workload, build
from tests.test_zones import fix, zones

KEY = "pipeline"


class Saved:
    """What a store holds after each delta (the semantics `Store.commit` implements)."""

    def __init__(self) -> None:
        self.base: dict[str, Any] = {}
        self.entries: dict[tuple[str, str], Any] = {}

    def apply(self, delta: StateDelta) -> None:
        if delta.complete:
            self.entries = {}
        self.base = delta.base
        for key, value in delta.entries.items():
            if value is None:
                self.entries.pop(key, None)
            else:
                self.entries[key] = value

    def document(self) -> dict[str, Any]:
        return plain(merge(self.base, self.entries))


def plain(document: dict[str, Any]) -> dict[str, Any]:
    """`document` as it comes back from a JSON column."""
    back: dict[str, Any] = json.loads(json.dumps(document))
    return back


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Workload:
    return build(tmp_path_factory.mktemp("store"), rules=40, devices=30)


def erase(pipeline: Pipeline, customer_id: str, at: float) -> Output:
    """The back office erases a customer (an empty retained CRM record)."""
    topic = f"rayon/{pipeline.config.store.id}/crm/customers/{customer_id}"
    return pipeline.on_mqtt(MqttInput(at, topic, b""))


def walk(workload: Workload, seed: int) -> Iterator[tuple[Pipeline, float]]:
    """A pipeline through 90 s of the synthetic store, its customers walking, one of them
    erased on the way, the rules reloaded, then time passing until every visit has ended
    and been forgotten; yields (pipeline, now) at random points."""
    rng = random.Random(seed)
    pipeline = Pipeline(workload.config, workload.rules, CustomerRegistry(workload.customers))
    adverts = workload.adverts(90.0, seed=seed)
    erased = rng.choice(workload.customers).id
    at = workload.start
    for n, adv in enumerate(adverts):
        pipeline.feed(adv)
        at = adv.at
        if n == len(adverts) // 2:
            erase(pipeline, erased, at)
        if n == len(adverts) // 3:
            pipeline.reload_rules(workload.rules)
        if rng.random() < 0.002:
            yield pipeline, at
    visits = workload.config.visits
    for step in range(1, int((visits.timeout + visits.gap) / 30.0) + 3):
        pipeline.tick(at + 30.0 * step)
        yield pipeline, at + 30.0 * step


def until_tracking(workload: Workload, seed: int, devices: int = 5) -> tuple[Pipeline, float]:
    """The walk's pipeline once it tracks more than `devices` devices and customers."""
    for pipeline, now in walk(workload, seed):
        if pipeline.zones.tracked() > devices and pipeline.engine.tracked() > devices:
            return pipeline, now
    raise AssertionError("the walk never tracked enough devices")


@pytest.mark.parametrize("seed", [1, 2])
def test_the_changes_add_up_to_the_snapshot(workload: Workload, seed: int) -> None:
    saved, partial = Saved(), 0
    for n, (pipeline, _) in enumerate(walk(workload, seed)):
        tracked = len(pipeline.zones.snapshot()["devices"]) + pipeline.engine.tracked()
        delta = pipeline.snapshot_changes()
        assert delta.complete == (n == 0)
        partial += 0 < len(delta.entries) < tracked  # only what changed
        saved.apply(delta)
        assert saved.document() == plain(pipeline.snapshot())
    assert pipeline.snapshot()["zones"]["devices"] == {}  # every visit ended and forgotten
    assert partial > 3


def test_a_lost_write_is_taken_again_whole(workload: Workload) -> None:
    saved = Saved()
    for n, (pipeline, _) in enumerate(walk(workload, 3)):
        delta = pipeline.snapshot_changes()
        if n % 3 == 1:  # the write failed: the store never saw it
            pipeline.resave()
            continue
        assert delta.complete == (n == 0 or n % 3 == 2)
        saved.apply(delta)
        assert saved.document() == plain(pipeline.snapshot())


def test_a_restored_pipeline_saves_everything_first(workload: Workload) -> None:
    pipeline, _ = until_tracking(workload, 4)
    pipeline.snapshot_changes()
    again = Pipeline(workload.config, workload.rules, CustomerRegistry(workload.customers))
    again.restore(plain(pipeline.snapshot()), [])
    delta = again.snapshot_changes()
    assert delta.complete and plain(merge(delta.base, delta.entries)) == plain(pipeline.snapshot())
    assert not again.snapshot_changes().entries  # nothing happened since


def test_visit_contexts_pruned_are_saved_gone(workload: Workload) -> None:
    saved = Saved()
    pipeline, now = until_tracking(workload, 9)
    saved.apply(pipeline.snapshot_changes())
    assert pipeline.engine.prune(now + workload.config.visits.gap + 1) > 5
    saved.apply(pipeline.snapshot_changes())
    assert saved.document() == plain(pipeline.snapshot())
    assert saved.document()["rules"]["visits"] == {}


def test_whole_and_merge_round_trip(workload: Workload) -> None:
    for pipeline, _ in walk(workload, 5):
        document = plain(pipeline.snapshot())
        delta = whole(document)
        assert delta.complete
        assert all(v == {} for v in (delta.base["zones"]["devices"], delta.base["rules"]["visits"]))
        assert merge(delta.base, delta.entries) == document
    assert merge({"zones": {"d1": ["aisle"]}}, {}) == {"zones": {"d1": ["aisle"]}}
    assert merge({"v": 1}, {("zones.devices", "d"): {}}) == {"v": 1}  # nowhere to put it


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["fix", "fix", "fix", "tick", "forget", "take"]),
            st.integers(0, 2),  # which device
            st.floats(0, 30),  # x
            st.floats(0, 30),  # y
            st.floats(0.1, 200),  # time step
        ),
        max_size=60,
    )
)
def test_zone_tracker_changes_follow_every_path(steps: list[Any]) -> None:
    """Enters, exits, dwell, visit ends and purges, forgetting, in any order."""
    tracker = ZoneTracker(zones(), VisitsConfig(120.0, 60.0), {"aisle": [5.0]})
    devices = [f"d{i}" for i in range(3)]
    saved: dict[str, Any] = {}
    t = 0.0
    for action, who, x, y, dt in steps:
        t += dt
        if action == "fix":
            tracker.update(fix(t, x, y, devices[who]))
        elif action == "tick":
            tracker.tick(t)
        elif action == "forget":
            tracker.forget(devices[who])
        base, changed = tracker.changes()
        assert base["devices"] == {}
        for device, value in changed.items():
            if value is None:
                saved.pop(device, None)
            else:
                saved[device] = value
        assert plain(saved) == plain(tracker.snapshot()["devices"])


def runtime_rows(store: Store) -> dict[str, float]:
    with store.reading() as session:
        found = session.connection().execute(text("SELECT key, updated_at FROM runtime_state"))
        return {key: at for key, at in found}


def test_the_store_keeps_the_changes_a_row_each(workload: Workload, any_store: Store) -> None:
    store = any_store
    store.commit(runtime={"doctor": {"checked_at": 1.0}}, at=1.0)
    for n, (pipeline, now) in enumerate(walk(workload, 6)):
        delta = pipeline.snapshot_changes()
        before = runtime_rows(store)
        store.commit(runtime={KEY: delta}, at=now + n)
        assert store.load_runtime(KEY) == plain(pipeline.snapshot())
        rows = runtime_rows(store)
        written = {k for k, at in rows.items() if at == now + n}
        assert len(written) == 1 + sum(v is not None for v in delta.entries.values())
        whole_ = pipeline.snapshot()
        assert len(rows) == 2 + len(whole_["zones"]["devices"]) + len(whole_["rules"]["visits"])
        if not delta.complete:  # the rest were left as they were
            assert {k: rows[k] for k in rows.keys() - written} == {
                k: before[k] for k in rows.keys() - written
            }
    assert store.load_runtime("doctor") == {"checked_at": 1.0}


def test_a_whole_document_replaces_every_saved_entry(workload: Workload, any_store: Store) -> None:
    store = any_store
    pipeline, now = until_tracking(workload, 7)
    store.commit(runtime={KEY: pipeline.snapshot_changes()}, at=now)
    assert len(runtime_rows(store)) > 5
    store.commit(runtime={KEY: {"zones": {}}}, at=now + 1)  # as `rayon forget` rewrites it
    assert store.load_runtime(KEY) == {"zones": {}}
    assert list(runtime_rows(store)) == [KEY]


def test_a_state_saved_whole_by_an_older_rayon_still_loads(
    workload: Workload, any_store: Store
) -> None:
    pipeline, _ = until_tracking(workload, 8)
    document = plain(pipeline.snapshot())
    engine = create_engine(any_store.url)
    with engine.begin() as connection:  # one row holding it all, as 0.2 wrote it
        connection.execute(
            text("INSERT INTO runtime_state (key, value, updated_at) VALUES (:k, :v, 0)"),
            {"k": KEY, "v": json.dumps(document)},
        )
    engine.dispose()
    assert any_store.load_runtime(KEY) == document


def test_a_state_key_must_leave_room_for_its_entries(any_store: Store) -> None:
    for key in ("a/b", "k" * 32):
        with pytest.raises(ValueError, match="live state key"):
            any_store.commit(runtime={key: {}})
