"""A pytest plugin for the mutants' runs: what failed in each test, and where, as pytest-bdd saw it.

Loaded with ``-p mutants.verdict``; with ``WORKQUEUE_VERDICTS=path`` it appends one JSON line per
test (under pytest-xdist, each test process appends its own). A line holds the test's outcome
and, for a failure, the phase (setup, call, teardown), the scenario step that raised (its type:
given, when or then, and its text, from pytest-bdd's ``pytest_bdd_step_error`` hook), whether
the exception came out of the step's own body (``pytest_bdd_before_step_call`` ran) or out of
the fixtures the step asked for, and the exception's class and first line.

``crashed`` names the first crash of the code under test seen during the test: a command or
the project's worker that printed a traceback (workqueue.testing.processes.note_crashes).
``rabbitmq`` is the version of the broker the test ran against (once one was started).
``xpass`` marks a strict expected failure (a known defect's scenario) that passed.

``assertion`` is true only for what a check itself raises: an AssertionError or a TimeoutError
(a wait on an observable condition that never came true), raised by the body of the step or,
for a plain test, by the test function. A worker that exited before it ever consumed
(processes.WorkerDidNotStart) is a start-up crash, not an assertion, wherever it is raised.
"""

import json
import os

import pytest

ENV = "WORKQUEUE_VERDICTS"
_STEP = pytest.StashKey[dict]()
_BODY = pytest.StashKey[bool]()
_RECORD = pytest.StashKey[dict]()
_SCENARIO = pytest.StashKey[bool]()


def _is_assertion(exc):
    names = {c.__name__ for c in type(exc).__mro__}
    return isinstance(exc, (AssertionError, TimeoutError)) and "WorkerDidNotStart" not in names


def _first_line(exc):
    """The exception's first line (a check's own message, when it gives one: the values pytest
    adds below it may hold what the check keeps out of sight, as a password)."""
    lines = str(exc).strip().splitlines()
    return " ".join(lines[0].split())[:600] if lines else type(exc).__name__


def pytest_bdd_before_scenario(request, feature, scenario):
    request.node.stash[_SCENARIO] = True


def pytest_bdd_before_step_call(request, feature, scenario, step, step_func, step_func_args):
    request.node.stash[_BODY] = True


def pytest_bdd_before_step(request, feature, scenario, step, step_func):
    request.node.stash[_BODY] = False


def pytest_bdd_step_error(request, feature, scenario, step, step_func, step_func_args, exception):
    request.node.stash[_STEP] = {
        "step_type": step.type, "step": f"{step.keyword} {step.name}",
        "in_body": request.node.stash.get(_BODY, False),
        "exception": type(exception).__name__, "message": _first_line(exception),
        "assertion": _is_assertion(exception) and request.node.stash.get(_BODY, False),
    }


def _crashes():
    """The crashes of the code under test the harness noted (workqueue.testing.processes)."""
    try:
        from workqueue.testing import processes
    except ImportError:          # a project without the harness
        return []
    return processes.crashes


def _rabbitmq(config):
    """The RabbitMQ version the test ran against, once the harness has a broker (else None)."""
    try:
        from workqueue.testing.plugin import run_facts
    except ImportError:
        return None
    try:
        return (run_facts(config) or {}).get("rabbitmq")
    except Exception:
        return None


def pytest_runtest_setup(item):
    _crashes().clear()


# tryfirst: the outermost wrapper, so that the report it records is the one every other
# plugin has finished with (conftest.py turns a known defect's failure into an expected one).
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    path = os.environ.get(ENV)
    if not path:
        return report
    state = item.stash.setdefault(_RECORD, {"nodeid": item.nodeid, "outcome": "passed"})
    if report.failed and state["outcome"] == "passed":
        state["outcome"] = "failed"
        state["phase"] = report.when
        crashed = list(_crashes())
        if crashed:
            state["crashed"] = crashed[0]
        if report.when == "call" and str(report.longrepr).startswith("[XPASS(strict)]"):
            state["xpass"] = True
        step = item.stash.get(_STEP, None)
        bdd = item.stash.get(_SCENARIO, False)
        if step is not None and report.when == "call":
            state.update(step)
        elif call.excinfo is not None:
            exc = call.excinfo.value
            state.update({"exception": type(exc).__name__, "message": _first_line(exc),
                          "assertion": report.when == "call" and not bdd and _is_assertion(exc),
                          "step": None if not bdd else f"({report.when} of the scenario)"})
    elif report.skipped and state["outcome"] == "passed":
        state["outcome"] = "xfailed" if hasattr(report, "wasxfail") else "skipped"
    if report.when == "teardown":
        version = _rabbitmq(item.config)
        if version:
            state["rabbitmq"] = version
        with open(path, "a") as out:
            out.write(json.dumps(state) + "\n")
    return report
