"""How `make bench` sees a peer's drain move (bench/peers.py), and how `python -m bench.celery_solo_wait`
reads a worker's gaps against what kombu's event loop predicts (bench/celery_solo_wait.py)."""

import pytest

from bench import peers
from bench.celery_solo_wait import gaps_of, verdict


@pytest.fixture
def marks(tmp_path, monkeypatch):
    monkeypatch.setenv(peers.MARKS_ENV, str(tmp_path))
    monkeypatch.setenv(peers.N_ENV, "5000")
    monkeypatch.setattr(peers, "_last_mark", [0.0])
    return tmp_path


def test_a_slow_drain_is_seen_moving(marks, monkeypatch):
    """Progress is marked every 100 tasks, and at the first task done a second or more after the
    last mark: 30 tasks over 15 s, one every half second, are seen as 30, not as 1."""
    clock = [1000.0]
    monkeypatch.setattr(peers.time, "monotonic", lambda: clock[0])
    for count in range(1, 31):
        peers._mark(count)
        clock[0] += 0.5
    first, last, got, latest = peers.read_marks(str(marks))
    assert (last, got) == (None, 29)                 # task 29 came a second after the mark of 27
    assert first is not None and latest >= first


def test_a_fast_drain_marks_every_hundredth_only(marks, monkeypatch):
    monkeypatch.setattr(peers.time, "monotonic", lambda: 1000.0)
    writes = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: writes.append(path) or real_open(path, *a, **k))
    for count in range(1, 251):
        peers._mark(count)
    assert len(writes) == 3                          # 1st, 100th, 200th


def test_the_stall_window_outlasts_kombus_longest_poll():
    """kombu's loop polls for at most 10 s when no timer is due sooner (Hub.fire_timers'
    max_delay, kombu 5.5-5.7): a peer waiting that long is slow, and must not be called stalled."""
    assert peers.STALL > 10


SAMPLES = [(t / 4, 0, 1) for t in range(0, 200)]     # (time, ready, unacked) every 0.25 s, unacked 1


def test_gaps_take_the_counts_sampled_after_they_settle():
    gaps = gaps_of([0.0, 0.1, 10.2, 10.3], SAMPLES + [(0.5, 0, 0)])
    assert [(round(g, 1), seen) for g, seen in gaps] == [(10.1, {1})]


@pytest.mark.parametrize("gaps, predicted, needs_one, why", [
    ([(10.0, {1}), (9.9, {1})], (9.0, 11.0), True, None),
    ([], (9.0, 11.0), True, "no gap, predicted at least one"),
    ([(4.0, {1})], (9.0, 11.0), True, "gap(s) of [4.0] s, predicted 9-11 s"),
    ([(10.0, {0})], (9.0, 11.0), True, "unacked counts [{0}] during a gap, predicted {1}"),
    ([(1.9, set())], (0.5, 2.5), False, None),
    ([], (0.5, 2.5), False, None),
    ([], None, False, None),
    ([(10.0, {1})], None, False, "1 gap(s), predicted none"),
])
def test_verdict(gaps, predicted, needs_one, why):
    assert verdict(gaps, predicted, needs_one) == why
