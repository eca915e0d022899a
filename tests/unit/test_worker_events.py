"""The worker's events file (--events): the worker contract's JSON lines, with no broker."""

import json

import pytest

from workqueue import worker


def test_each_event_is_one_json_line_appended(tmp_path):
    path = tmp_path / "events.jsonl"
    report = worker.events_file(str(path))
    report("consuming")
    report("received", body="task 1.", redelivered=True)
    report("done", body="task 1.")
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"event": "consuming"}, {"event": "received", "body": "task 1.", "redelivered": True},
        {"event": "done", "body": "task 1."}]


def test_an_events_file_that_cannot_be_opened_is_a_usage_error(tmp_path, capsys):
    """As every bad option: argparse's usage, then one line saying what is wrong; exit 2."""
    path = tmp_path / "no" / "such" / "dir" / "events.jsonl"
    with pytest.raises(SystemExit) as exited:
        worker.main(["--events", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2
    assert err[-1] == f"python -m workqueue.worker: error: --events: cannot open {path}: No such file or directory"
