"""The specification's pytest set-up: the steps modules, the harness plugin, known defects.

The throwaway brokers come from workqueue's pytest plugin (workqueue/testing/plugin.py, loaded
through its pytest11 entry point when the package is installed with the test extra, and named
here when it is not): ``--broker=auto|node|container|url``, the ``broker``, ``cluster``,
``vhost`` and ``amqp_url`` fixtures. This project fails the whole run at its start, in one line,
when no broker can be had: it never turns green by skipping.
"""

import datetime
import importlib.metadata
import json
import os
import pathlib
import re
import subprocess

import pytest
import tomllib

from steps import EXPECTED_FAILURE, SCENARIO
from workqueue.testing import plugin as workqueue_plugin
from workqueue.testing import scheduling
from workqueue.testing.contract import CAPABILITIES

pytest_plugins = [
    "pytester",
    "steps.broker",
    "steps.queues",
    "steps.tasks",
    "steps.workers",
    "steps.cluster",
    "steps.tutorial",
    "steps.dispatch",
    "steps.requeue",
]
if not any(ep.value.startswith("workqueue.testing.plugin")
           for ep in importlib.metadata.entry_points(group="pytest11")):
    pytest_plugins.append("workqueue.testing.plugin")       # not installed: a source checkout

#: Known RabbitMQ defects, by id: the scenarios tagged @defect_<id> are strict expected failures
#: on the versions each lists.
DEFECTS = tomllib.loads((pathlib.Path(__file__).parent / "features" / "defects.toml").read_text())


def pytest_configure(config):
    for capability, what in CAPABILITIES.items():
        config.addinivalue_line("markers", f"needs_{capability}: a worker under test must have {what}")
    for key, defect in DEFECTS.items():
        config.addinivalue_line("markers", f"defect_{key}: RabbitMQ defect: {defect['title']}")
    if config.option.cucumber_json_path and not hasattr(config, "workerinput"):
        # pytest-bdd writes the file at the end but does not make its directory
        os.makedirs(os.path.dirname(os.path.abspath(config.option.cucumber_json_path)), exist_ok=True)
    if not (config.option.collectonly or config.option.help or _unit_tier_only(config)):
        workqueue_plugin.require_broker(config)


#: The broker-free tier: pure logic of the library, run in seconds (``pytest tests/unit``).
UNIT_TIER = pathlib.Path(__file__).parent / "tests" / "unit"


def _unit_tier_only(config):
    """Only tests/unit was asked for: no broker is needed, and none is required."""
    paths = [pathlib.Path(arg.split("::")[0]).resolve() for arg in config.args]
    return bool(paths) and all(path.is_relative_to(UNIT_TIER) for path in paths)


_FAILED_STEP = pytest.StashKey[tuple]()
_SYMPTOM = pytest.StashKey[str]()


@pytest.hookimpl(tryfirst=True)      # before pytest-xdist's own, which reads the groups
def pytest_collection_modifyitems(config, items):
    """This project's schedule (the cluster tests of a module on one process, the longest
    tests first: docs/schedule.md); and the scenarios of known broker defects, on the versions
    they fail on, as strict expected failures with a pinned symptom (see
    pytest_runtest_makereport)."""
    scheduling.keep_cluster_tests_together(config, items)
    scheduling.longest_first(config, items)
    skip_broker_settings_on_url(config, items)
    defects = {key: d for key, d in DEFECTS.items() if any(item.get_closest_marker(f"defect_{key}") for item in items)}
    session_broker = workqueue_plugin.session_broker(config) if defects else None
    version = session_broker.version if session_broker else None
    for key, defect in defects.items():
        if version not in defect["versions"]:
            continue                    # not known to fail here: the scenario must pass
        if defect.get("defaults", session_broker.defaults) != session_broker.defaults:
            continue                    # a difference of upstream's defaults, and Debian's are run
        reason = (f"RabbitMQ {version} defect {key}: {defect['title']} ({', '.join(defect['references'])}); "
                  f"if this passes, the defect is gone on {version}: update features/defects.toml")
        for item in items:
            if item.get_closest_marker(f"defect_{key}"):
                item.stash[EXPECTED_FAILURE] = {"reason": reason, **defect["symptom"]}


def skip_broker_settings_on_url(config, items):
    """The scenarios tagged @broker_settings change their broker's settings while they run, or
    raise its alarms (steps/broker.py: a consumer timeout of 5 s, a memory alarm), which the
    broker of a test process may take and a broker the user gives (--broker=url), shared by
    every test process and maybe by others, may not: skipped there, with the reason."""
    from workqueue.testing import BrokerError
    try:
        kind = workqueue_plugin.backend(config)
    except BrokerError:
        return                      # each test that asks for a broker fails, saying why
    if kind != "url":
        return
    skip = pytest.mark.skip(reason="changes its broker's settings while it runs (a consumer timeout of 5 s) or "
                                   "raises its alarms, which a shared broker must not see: run with "
                                   "--broker=node or --broker=container")
    for item in items:
        if item.get_closest_marker("broker_settings"):
            item.add_marker(skip)


def pytest_bdd_before_scenario(request, feature, scenario):
    request.node.stash[SCENARIO] = scenario


def pytest_bdd_step_error(request, feature, scenario, step, step_func, step_func_args, exception):
    request.node.stash[_FAILED_STEP] = (f"{step.keyword} {step.name}", " ".join(str(exception).split()))
    # What the step saw, as its message's first line says it (pytest's assertion diff follows).
    request.node.stash[_SYMPTOM] = (str(exception).strip().splitlines() or [type(exception).__name__])[0]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A defect's scenario is an expected failure only when it fails in the step and with the
    error its entry pins (its symptom); any other failure is a real one, and a pass is a strict
    XPASS (the defect is gone). The outcome is set as pytest's own xfail sets it."""
    report = yield
    if report.when == "call" and report.failed and _FAILED_STEP in item.stash:
        report.user_properties.append(("failed_step", item.stash[_FAILED_STEP][0]))
        report.user_properties.append(("symptom", item.stash.get(_SYMPTOM, "")[:1000]))
    defect = item.stash.get(EXPECTED_FAILURE, None)
    if defect is None or report.when != "call":
        return report
    if report.passed:
        report.outcome = "failed"
        report.longrepr = f"[XPASS(strict)] {defect['reason']}"
    elif report.failed:
        step, message = item.stash.get(_FAILED_STEP, (None, ""))
        steps = defect["step"] if isinstance(defect["step"], (list, tuple)) else [defect["step"]]
        if step in steps and re.search(defect["error"], message):
            report.outcome = "skipped"
            report.wasxfail = defect["reason"]
        else:
            report.sections.append(("defect", f"this is not the defect's symptom ({defect['step']!r}, "
                                              f"error matching {defect['error']!r}): a real failure"))
    return report


# -- pytest-bdd's report data across pytest-xdist ------------------------------------------------
# pytest-bdd 9 keeps each report's scenario (steps, results) in a registry keyed by the report
# object, which xdist does not carry from a test process to the controller: the cucumber JSON
# of a parallel run would be empty. These two hooks carry it. They use pytest-bdd's
# pytest_bdd.reporting (not a public API; pytest-bdd is pinned to 9.x in pyproject), and
# tests/test_reports.py fails if a parallel run's cucumber JSON misses a scenario.
_BDD_KEY = "workqueue_bdd_report_context"
_STARTED = pytest.StashKey[datetime.datetime]()


@pytest.hookimpl(wrapper=True)
def pytest_report_to_serializable(config, report):
    data = yield
    from pytest_bdd.reporting import test_report_context_registry
    context = test_report_context_registry.get(report)
    if data is not None and context is not None:
        data[_BDD_KEY] = {"scenario": context.scenario, "name": context.name}
    return data


@pytest.hookimpl(wrapper=True)
def pytest_report_from_serializable(config, data):
    report = yield
    context = data.get(_BDD_KEY) if isinstance(data, dict) else None
    if report is not None and context is not None:
        from pytest_bdd.reporting import ReportContext, test_report_context_registry
        test_report_context_registry[report] = ReportContext(**context)
    return report


# -- the run's record, beside its cucumber JSON: what `make docs` needs to place it -----------
def pytest_sessionstart(session):
    session.config.stash[_STARTED] = datetime.datetime.now(datetime.timezone.utc)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """With --cucumberjson=DIR/cucumber.json, write DIR/run.json: the RabbitMQ version and
    backend of the run, the commit, when it ran and how it ended (read by ``python -m docs``)."""
    config = session.config
    path = config.option.cucumber_json_path
    if not path or hasattr(config, "workerinput"):
        return
    facts = workqueue_plugin.run_facts(config) or {}
    root = pathlib.Path(__file__).parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
        modified = bool(subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                       capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, modified = None, None
    record = {**facts, "commit": commit, "modified": modified,
              "started": config.stash.get(_STARTED, None) and config.stash[_STARTED].isoformat(),
              "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(),
              "exitstatus": int(exitstatus), "cucumber": os.path.basename(path),
              "junit": os.path.basename(config.option.xmlpath) if config.option.xmlpath else None}
    target = pathlib.Path(path).parent / "run.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record, indent=2) + "\n")
