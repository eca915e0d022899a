"""A plain install (``pip install .``, no extras) is the library and its CLIs, with pika alone.

Builds a fresh virtualenv from the project's files (as git sees them), installs it without
extras, and checks: no module of the package pulls a test or benchmark library in; the CLIs
work; the tools that need the test extra say so in one line and exit 2.
"""

import os
import subprocess
import textwrap

import pytest

from tests.installs import fresh_install

#: One virtualenv for the module: in a parallel run its tests stay on one process.
pytestmark = pytest.mark.xdist_group("plain-install")
FORBIDDEN = ("pytest", "pytest_bdd", "pytest_rabbitmq", "mirakuru", "testcontainers", "docker", "dramatiq",
             "celery", "kombu")


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """(python of a venv with ``pip install .`` and nothing else, its environment)."""
    base = tmp_path_factory.mktemp("plain-install")
    python, _source = fresh_install(base)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return str(python), env, base


def run(plain, *args, **kwargs):
    python, env, cwd = plain
    return subprocess.run([python, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, **kwargs)


def test_the_plain_install_has_pika_and_no_test_or_bench_library(plain):
    listed = run(plain, "-m", "pip", "list", "--format=freeze").stdout.lower()
    names = {line.split("==")[0] for line in listed.splitlines()}
    assert "pika" in names and "workqueue" in names
    assert not names & {"pytest", "testcontainers", "mirakuru", "dramatiq", "celery", "docker"}, names


def test_no_module_of_the_package_imports_a_test_or_bench_library(plain):
    check = textwrap.dedent(f"""
        import importlib, pkgutil, sys, workqueue
        names = [m.name for m in pkgutil.walk_packages(workqueue.__path__, "workqueue.")
                 if m.name != "workqueue.testing.plugin"]          # pytest's plugin: loaded by pytest only
        for name in names:
            importlib.import_module(name)
        bad = sorted(m for m in sys.modules if m.split(".")[0] in {FORBIDDEN!r})
        print(len(names), bad)
    """)
    result = run(plain, "-c", check)
    assert result.returncode == 0, result.stderr[-2000:]
    count, bad = result.stdout.split(" ", 1)
    assert int(count) > 10 and bad.strip() == "[]", result.stdout


@pytest.mark.parametrize("module", ["new_task", "worker", "status"])
def test_the_clis_work_with_pika_alone(plain, module):
    result = run(plain, "-m", f"workqueue.{module}", "--help")
    assert result.returncode == 0 and "exit codes:" in result.stdout, result.stderr


@pytest.mark.parametrize("script", ["workqueue-new-task", "workqueue-worker", "workqueue-status"])
def test_the_clis_are_console_scripts_too(plain, script):
    python, env, cwd = plain
    command = os.path.join(os.path.dirname(python), script)
    result = subprocess.run([command, "--help"], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "exit codes:" in result.stdout, result.stderr


def test_new_task_without_a_broker_is_exit_3_in_one_line(plain):
    result = run(plain, "-m", "workqueue.new_task", "--url", "amqp://u:secret-pw@127.0.0.1:1/%2F", "hello",
                 stdin=subprocess.DEVNULL)
    assert result.returncode == 3 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "connection refused" in result.stderr and "secret-pw" not in result.stderr


def test_the_package_is_the_library_and_its_clis_only(plain):
    # The soak, its timeline and the demo need the test extra: they live beside the package
    # (soak/, examples/), not in it.
    check = ("import importlib.util\n"
             "print([m for m in ('workqueue.soak', 'workqueue.timeline', 'workqueue.demo', 'soak', 'examples')"
             " if importlib.util.find_spec(m)])")
    result = run(plain, "-c", check)
    assert (result.returncode, result.stdout.strip()) == (0, "[]"), (result.stdout, result.stderr)


@pytest.mark.parametrize("module", ["examples.demo", "soak"])
def test_a_tool_that_needs_the_test_extra_says_so_in_one_line(plain, module):
    python, env, base = plain
    result = subprocess.run([python, "-m", module], env=env, cwd=base / "source", capture_output=True, text=True,
                            timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'workqueue[test]'" in lines[0], lines


def test_the_conformance_kit_without_its_extra_says_so_in_one_line(plain):
    python, env, cwd = plain
    command = os.path.join(os.path.dirname(python), "workqueue-conformance")
    result = subprocess.run([command, "--list"], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert (result.returncode, len(lines)) == (2, 1), (result.returncode, result.stderr)
    assert "pip install 'workqueue[conformance]'" in lines[0], lines
