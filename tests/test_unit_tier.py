"""The unit tier (tests/unit) needs no broker: no RabbitMQ on PATH, no Docker engine, and a
user's WORKQUEUE_* variables pointing nowhere change nothing. It takes seconds."""

import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_the_unit_tier_runs_with_no_broker_at_all_in_under_15_seconds(tmp_path):
    python_dir = os.path.dirname(sys.executable)
    env = {"PATH": f"{python_dir}:/usr/bin:/bin", "HOME": str(tmp_path),
           "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
           "WORKQUEUE_RABBITMQ_SERVER": str(tmp_path / "no-rabbitmq-server"),
           "WORKQUEUE_RABBITMQCTL": str(tmp_path / "no-rabbitmqctl"),
           "WORKQUEUE_URL": "amqp://u:p@127.0.0.1:1/%2F"}
    # No rabbitmq-server on that PATH (Debian's lives in /usr/sbin and /usr/lib/rabbitmq/bin),
    # nor where the node backend looks, and no Docker engine: a test that needs a broker fails
    # at once there, in one line. The contrast shows the environment really has none.
    assert subprocess.run(["sh", "-c", "command -v rabbitmq-server"], env=env, capture_output=True).returncode != 0
    contrast = subprocess.run([sys.executable, "-m", "pytest", "tests/test_soak.py", "-q", "-n", "0",
                               "-p", "no:cacheprovider"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
    assert contrast.returncode != 0 and "broker" in (contrast.stdout + contrast.stderr), contrast.stdout[-1000:]
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "pytest", "tests/unit", "-q", "-n", "0", "-p", "no:cacheprovider"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout, run.stdout[-500:]
    assert seconds < 15, f"the unit tier took {seconds:.1f} s"
