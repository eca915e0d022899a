"""The reports of a parallel run hold every scenario: the cucumber JSON (pytest-bdd) gets its
data from the test processes through conftest.py's hooks, which rely on pytest-bdd's
non-public reporting registry (pytest-bdd pinned to 9.x): this fails when that breaks."""

import json
import os
import subprocess
import sys


def test_a_parallel_runs_cucumber_json_holds_every_scenario(tmp_path, broker):
    # On this run's broker, as a user's own (--broker=url): what is checked is the report, and
    # two more brokers to boot would double this test's time. The scenarios that pass on every
    # version (those declaring a non-durable "hello" are expected failures on RabbitMQ 4.3).
    report = tmp_path / "cucumber.json"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--broker=url",
                          "-n", "2", "--dist", "loadgroup", f"--cucumberjson={report}",
                          "tests/test_declaration.py",
                          "-k", "not broker_that_denies and not hello and not new_durable"],
                         env={**os.environ, "WORKQUEUE_BROKER_URL": broker.url("/"),
                              "WORKQUEUE_MANAGEMENT_URL": broker.management_url},
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:]
    features = json.loads(report.read_text())
    scenarios = [element["name"] for feature in features for element in feature["elements"]]
    assert len(scenarios) >= 4, scenarios
    assert all(step["result"]["status"] == "passed"
               for feature in features for element in feature["elements"] for step in element["steps"])
