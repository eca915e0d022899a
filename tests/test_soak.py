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
                       timed_out=None, producer_reconnections=0, worker_reconnections=0, resent_after_nack=0,
                       workers_started=2,
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


# 2 kills x prefetch 10 + 1 crash x (2 workers x prefetch 10 + window 100)
@pytest.mark.parametrize("extra, ok", [(10 * 2 + 1 * (2 * 10 + 100), True), (10 * 2 + 1 * (2 * 10 + 100) + 1, False)])
def test_duplicates_are_bounded_by_kills_crashes_workers_prefetch_and_window(extra, ok):
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


# -- whole runs: each ends by itself with a verdict, and leaves nothing behind -------------------
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from workqueue.testing import reap_orphans, wait_until  # noqa: E402

needs_broker_control = pytest.mark.broker_control


def test_a_worker_that_exits_on_its_own_is_reported_with_its_code_and_last_lines(tmp_path):
    workers = soak.Workers(["amqp://u:p@127.0.0.1:notaport/"], ["--queue", "soak"], 1, str(tmp_path))
    process = workers.start()
    process.wait(60)
    [line] = workers.exited_on_their_own()
    assert "worker w0" in line and "code 2" in line and "malformed broker URL" in line, line


def _soak(backend, *args):
    return subprocess.Popen([sys.executable, "-m", "workqueue.soak", "--broker", backend, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def _descendants(pid):
    """Pids of every process below ``pid`` (from /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _wait_workers(run, count=2):
    """The pids of the soak's worker processes, once ``count`` of them run. A soak that ends
    first, or does not get there in time, fails the test with what it printed."""
    def workers():
        if run.poll() is not None:
            return "ended"
        found = [p for p in _descendants(run.pid) if "workqueue.worker" in _cmdline(p)]
        return found if len(found) >= count else None
    try:
        found = wait_until(workers, 180, f"the soak's {count} workers")
    except TimeoutError as exc:
        found = str(exc)
    if isinstance(found, list):
        return found
    if run.poll() is None:
        run.send_signal(signal.SIGINT)
    try:
        out, err = run.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        run.kill()
        out, err = run.communicate()
    pytest.fail(f"the soak did not start its {count} workers ({found}); exit {run.returncode}; "
                f"stdout: {out[-1500:]!r}; stderr: {err[-1500:]!r}")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


@needs_broker_control
def test_a_run_in_which_nothing_moves_fails_within_the_stall_time(broker_backend):
    """Tasks of 4 s, a stall limit of 1 s: the run ends as FAIL naming the stall, not at --max-seconds."""
    run = _soak(broker_backend, "-n", "4", "--workers", "1", "--prefetch", "1",
                "--kills", "0", "--crashes", "0", "--restarts", "0", "--work-ms", "4000",
                "--stall-seconds", "1", "--max-seconds", "300")
    out, err = run.communicate(timeout=240)
    assert run.returncode == 1, (out, err)
    assert "verdict: FAIL" in out and "no task processed or confirmed for 1 s" in out, out


@needs_broker_control
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_ends_everything_the_soak_started(broker_backend, sig):
    run = _soak(broker_backend, "-n", "1000000", "--workers", "2", "--kills", "0",
                "--crashes", "0", "--restarts", "0", "--work-ms", "5")
    try:
        _wait_workers(run)
        everything = _descendants(run.pid)
        run.send_signal(sig)
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130, (run.returncode, err)
    assert err.strip().splitlines() == ["soak: interrupted; every broker and worker it started is stopped"], err
    wait_until(lambda: not [p for p in everything if _alive(p)], 60,
               f"every process the soak started to end: {[_cmdline(p)[:80] for p in everything if _alive(p)]}")


@needs_broker_control
def test_workers_of_a_soak_killed_outright_exit_by_themselves(broker_backend):
    run = _soak(broker_backend, "-n", "1000000", "--workers", "2", "--kills", "0",
                "--crashes", "0", "--restarts", "0", "--work-ms", "5")
    everything = []
    try:
        workers = _wait_workers(run)
        everything = _descendants(run.pid)
        run.kill()
        run.wait(30)
        wait_until(lambda: not [p for p in workers if _alive(p)], 60, "the orphaned workers to exit")
    finally:
        # The broker of a soak killed outright is not the workers' concern: end it here, by pid
        # (a node), or as an orphaned container (a container whose owner is dead).
        if run.poll() is None:
            run.kill()
            run.wait(30)
        for pid in everything:
            if _alive(pid) and "workqueue.worker" not in _cmdline(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        reap_orphans()
        run.stdout.close()
        run.stderr.close()
