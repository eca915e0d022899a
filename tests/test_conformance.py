"""The conformance kit from the outside, as a new user meets it: ``pip install
'workqueue[conformance]'`` into a fresh virtualenv, then ``workqueue-conformance --manifest`` from
a project directory of its own (no checkout of this one), on a worker written there that
follows only the contract (docs/conformance.md).

One virtualenv for the module; one run of the kit on a broker of its own (one boot), two
scenarios."""

import json
import os
import shutil
import subprocess
import textwrap

import pytest

from tests.installs import fresh_install

#: One virtualenv for the module: in a parallel run its tests stay on one process.
pytestmark = pytest.mark.xdist_group("conformance-kit")


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


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """(the venv's bin directory with ``pip install '<this project>[conformance]'``, its
    environment, a scratch project directory outside the repository)."""
    base = tmp_path_factory.mktemp("conformance-kit")
    python, source = fresh_install(base, "conformance", timeout=900)
    shutil.rmtree(source)                        # nothing of the checkout is left to lean on
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "WORKQUEUE_BROKER_URL")}
    project = base / "my-worker"
    project.mkdir()
    return python.parent, env, project


def test_a_worker_from_outside_runs_by_its_manifest_alone(kit, request):
    if request.config.getoption("broker") == "url":
        pytest.skip("this run starts a throwaway broker of its own (--broker=node or --broker=container), "
                    "which --broker=url cannot give it")
    bin_dir, env, project = kit
    (project / "worker.py").write_text(textwrap.dedent(WORKER))
    (project / "manifest.toml").write_text(MANIFEST)
    run = subprocess.run(
        [str(bin_dir / "workqueue-conformance"), "--manifest", "manifest.toml", "--impl", "outside",
         f"--broker={request.config.getoption('broker')}", "--jobs", "1",
         "--", "-k", "two_workers_share_five_tasks or sigterm_during_a_task"],
        cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    runs = list((project / "reports" / "conformance" / "runs").iterdir())
    assert len(runs) == 1, runs
    reports = runs[0]
    results = json.loads((reports / "results.json").read_text())
    assert [i["id"] for i in results["implementations"]] == ["outside"], results["implementations"]
    cells = {c["scenario"]: (c["outcome"], c["finding"], c["symptom"]) for c in results["cells"]}
    assert cells == {
        "Two workers share five tasks": ("passed", None, None),
        "SIGTERM during a task": ("expected failure", "sigterm-default-action",
                                  "alice exited with code -15 (SIGTERM), without a stack trace, having finished "
                                  "0 of 1 task(s); stderr []")}, cells
    assert "| Each task goes to the next waiting worker in turn | ✔ |" in run.stdout, run.stdout[-2000:]
    assert ('- ⚠ outside: SIGTERM during a task [sigterm-default-action]: Then "alice" finishes the long task '
            'and exits with code 0, without a traceback: alice exited with code -15 (SIGTERM)') in run.stdout
    assert {p.name for p in reports.iterdir()} >= {"results.json", "outside.json", "table.md", "junit.xml"}


@pytest.mark.parametrize("args, says", [
    (["--manifest", "nowhere.toml"], "nowhere.toml"),
    (["--manifest", "manifest.toml", "--impl", "nobody"], "no implementation 'nobody'"),
    (["--broker", "url"], "--broker url needs --url"),
])
def test_the_kit_refuses_bad_usage_in_one_line_with_exit_2(kit, tmp_path, args, says):
    bin_dir, env, _project = kit
    (tmp_path / "manifest.toml").write_text(MANIFEST)
    run = subprocess.run([str(bin_dir / "workqueue-conformance"), *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    lines = run.stderr.strip().splitlines()
    assert (run.returncode, len(lines)) == (2, 1) and says in lines[0], (run.returncode, run.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.toml"]       # no reports, no builds
