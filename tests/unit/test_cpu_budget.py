"""What `python -m bench.cpu` counts as what: the kinds of process in a run's CPU budget, from
the command lines this project's runs have (bench/cpu.py)."""

import signal
import subprocess
import sys
import time

import pytest

from bench.cpu import kind_of, main

BEAM = "/usr/lib/erlang/erts-13.1.5/bin/beam.smp"


@pytest.mark.parametrize("argv, kind", [
    ([BEAM, "-W", "w", "--", "-root", "/usr/lib/erlang", "--", "-pa", "", "-noinput", "-s", "rabbit", "boot",
      "-boot", "start_sasl"], "rabbitmq"),
    ([BEAM, "-B", "--", "-root", "/usr/lib/erlang", "--", "-noshell", "-noinput", "-run", "escript", "start",
      "-escript", "main", "rabbitmqctl_escript", "-extra", "/usr/lib/rabbitmq/escript/rabbitmqctl", "eval"],
     "erlang-cli"),
    (["/usr/lib/erlang/erts-13.1.5/bin/epmd", "-daemon"], "erlang-helpers"),
    (["/work/main/.venv/bin/python3", "-u", "-c", "import sys;exec(eval(sys.stdin.readline()))"], "pytest"),
    ([".venv/bin/python", ".venv/bin/pytest", "--broker=node", "-n", "6"], "pytest"),
    (["/work/main/.venv/bin/python", "-u", "-m", "workqueue.worker", "--events", "/tmp/e.jsonl"], "workqueue-worker"),
    (["/work/main/.venv/bin/python", "-m", "soak", "--broker=node"], "python"),
    (["/usr/bin/containerd-shim-runc-v2", "-namespace", "moby"], "docker"),
    (["/usr/bin/java", "-XX:TieredStopAtLevel=1", "-jar", "worker.jar"], "jvm"),
    (["/bin/sh", "/usr/lib/rabbitmq/bin/rabbitmq-server"], "other"),
    ([], "other"),
])
def test_each_process_of_a_run_is_counted_as_its_kind(argv, kind):
    assert kind_of(argv) == kind


def test_the_budget_of_a_command_is_a_table_and_its_exit_status(capsys):
    status = main(["--interval", "0.05", "--", sys.executable, "-c", "sum(range(3_000_000)); raise SystemExit(3)"])
    out = capsys.readouterr().out
    assert status == 3
    assert "(exit status 3)" in out and "the machine" in out and "the floor these CPU seconds put" in out


def test_no_command_is_a_one_line_error_with_exit_2():
    result = subprocess.run([sys.executable, "-m", "bench.cpu"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == ("python -m bench.cpu: error: no command given: "
                                                     "python -m bench.cpu -- make test BROKER=node")


def test_a_sigterm_ends_the_command_its_own_way_and_the_table_is_still_printed(tmp_path):
    """The command is given the SIGTERM (here it traps it and exits 7) and the tool prints its
    table after it, with the command's own exit status."""
    ready = tmp_path / "ready"
    script = f"trap 'exit 7' TERM; touch {ready}; while :; do sleep 0.05; done"
    tool = subprocess.Popen([sys.executable, "-m", "bench.cpu", "--interval", "0.05", "--", "sh", "-c", script],
                            stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not ready.exists():
        assert time.monotonic() < deadline and tool.poll() is None, "the command never started"
        time.sleep(0.02)
    tool.send_signal(signal.SIGTERM)
    out, _ = tool.communicate(timeout=10)
    assert tool.returncode == 7
    assert "(exit status 7)" in out and "the machine" in out
