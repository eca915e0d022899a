"""The conformance suite from the outside: a worker written elsewhere, following only the
contract (docs/conformance.md), is run by its manifest's path, with no change to the project.

One run of `python -m conformance` on a broker of its own (one boot), two scenarios."""

import json
import subprocess
import sys
import textwrap

import pytest

from docs.__main__ import ROOT

WORKER = '''
import json, os, time
import pika

env = os.environ
events = open(env["WORKER_EVENTS"], "a", buffering=1)
params = pika.URLParameters(env["WORKER_URL"])
params.client_properties = {"connection_name": env["WORKER_CONNECTION_NAME"]}
channel = pika.BlockingConnection(params).channel()
channel.queue_declare(env["WORKER_QUEUE"], durable=True)
if int(env.get("WORKER_PREFETCH") or 1):
    channel.basic_qos(prefetch_count=int(env.get("WORKER_PREFETCH") or 1))

def work(ch, method, properties, body):
    task = body.decode()
    events.write(json.dumps({"event": "received", "body": task, "redelivered": method.redelivered}) + "\\n")
    time.sleep(task.count(".") * float(env["WORKER_SECONDS_PER_DOT"]))
    events.write(json.dumps({"event": "done", "body": task}) + "\\n")
    ch.basic_ack(method.delivery_tag)

channel.basic_consume(env["WORKER_QUEUE"], work)
channel.start_consuming()
'''

MANIFEST = '''
[outside]
title = "a worker from elsewhere"
language = "Python"
client = "pika"
command = ["{python}", "-u", "worker.py"]
capabilities = ["prefetch", "one_at_a_time", "redelivered"]
events = ["received", "done"]      # no "consuming": the steps take the broker's view

# It sets no SIGTERM handler: a finding of the project's manifest, named by id.
[[outside.expected]]
finding = "sigterm-default-action"
scenario = "SIGTERM during a task"
step = 'Then "alice" finishes the long task and exits with code 0, without a traceback'
error = 'exited with code -15 \\(SIGTERM\\), without a stack trace, having finished 0 of 1 task'
'''


def test_a_worker_from_outside_runs_by_its_manifest_path(tmp_path, request):
    if request.config.getoption("broker") == "url":
        pytest.skip("the conformance runner starts throwaway brokers of its own (--broker=node or "
                    "--broker=container), which --broker=url cannot give it")
    (tmp_path / "worker.py").write_text(textwrap.dedent(WORKER))
    (tmp_path / "manifest.toml").write_text(MANIFEST)
    reports = tmp_path / "reports"
    run = subprocess.run(
        [sys.executable, "-m", "conformance", "--impl-file", str(tmp_path / "manifest.toml"), "--impl", "outside",
         f"--broker={request.config.getoption('broker')}", "--jobs", "1", "--reports", str(reports),
         "--", "-k", "two_workers_share_five_tasks or sigterm_during_a_task"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    results = json.loads((reports / "results.json").read_text())
    cells = {c["scenario"]: (c["outcome"], c["finding"], c["symptom"]) for c in results["cells"]}
    assert cells == {
        "Two workers share five tasks": ("passed", None, None),
        "SIGTERM during a task": ("expected failure", "sigterm-default-action",
                                  "alice exited with code -15 (SIGTERM), without a stack trace, having finished "
                                  "0 of 1 task(s); stderr []")}, cells
    assert "| Each task goes to the next waiting worker in turn | ✔ |" in run.stdout, run.stdout[-2000:]
    assert ('- ⚠ outside: SIGTERM during a task [sigterm-default-action]: Then "alice" finishes the long task '
            'and exits with code 0, without a traceback: alice exited with code -15 (SIGTERM)') in run.stdout
    assert (reports / "outside.json").exists() and (reports / "table.md").exists()
