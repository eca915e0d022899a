"""The soak's checker: it must fail when a task is lost, unexpected, or run too often."""

import argparse
import collections
import os

import pytest

from workqueue import soak


def result(confirmed, processed, published=None, kills=0, crashes=0, restarts=0, prefetch=10, window=100):
    args = argparse.Namespace(n=len(published or confirmed), prefetch=prefetch, window=window, workers=2,
                              cluster=False, queue_type="quorum", work_ms=0, seed=1)
    return soak.Result(args=args, version="x", kind="node", boot=0, wall=1, published=set(published or confirmed),
                       confirmed=set(confirmed), counts=collections.Counter(processed),
                       chaos=soak.Chaos(kills=kills, crashes=crashes, restarts=restarts), producer_error=None,
                       timed_out=None, producer_reconnections=0, worker_reconnections=0, resent_after_nack=0, workers_started=2,
                       unfired=0)


def test_every_confirmed_task_processed_once_passes():
    r = result(["a", "b"], ["a", "b"])
    assert r.failures() == [] and "verdict: PASS" in r.table()


def test_a_confirmed_task_never_processed_is_lost():
    r = result(["a", "b"], ["a"])
    assert r.lost == ["b"] and "verdict: FAIL" in r.table()


def test_a_processed_task_never_published_is_unexpected():
    r = result(["a"], ["a", "z"])
    assert r.unexpected == ["z"] and r.failures()


def test_an_unconfirmed_task_is_not_lost_but_the_run_is_incomplete():
    r = result(["a"], ["a"], published=["a", "b"])
    assert r.lost == [] and r.unexpected == []
    assert r.failures() == ["only 1 of 2 tasks confirmed"]


@pytest.mark.parametrize("extra, ok", [(10 * 2 + 1 * (10 + 100), True), (10 * 2 + 1 * (10 + 100) + 1, False)])
def test_duplicates_are_bounded_by_kills_crashes_prefetch_and_window(extra, ok):
    r = result(["a"], ["a"] * (1 + extra), kills=2, crashes=1)
    assert r.duplicates == extra and (r.failures() == []) is ok


def test_records_survive_partial_lines_and_are_read_incrementally(tmp_path):
    records = soak.Records(tmp_path)
    path = tmp_path / "123.done"
    path.write_bytes(b"a\nb\nc")
    assert records.refresh().counts == {"a": 1, "b": 1}
    with open(path, "ab") as f:
        f.write(b"\na\n")
    assert records.refresh().counts == {"a": 2, "b": 1, "c": 1}


def test_the_worker_handler_appends_one_line_per_task(tmp_path, monkeypatch):
    monkeypatch.setenv(soak.RECORD_ENV, str(tmp_path))
    monkeypatch.setattr(soak, "_record_fd", None)
    from workqueue.consumer import Delivery
    soak.record(Delivery(body=b"run:1"))
    soak.record(Delivery(body=b"run:2"))
    os.close(soak._record_fd)
    assert (tmp_path / f"{os.getpid()}.done").read_bytes() == b"run:1\nrun:2\n"
