"""The conformance suite's options and its record of each cell (implementation x scenario).

    pytest conformance -m conformance --impl reference,pika-blocking [--manifest my.toml] [--impl-file my.toml]

``--conformance-results=FILE`` writes one JSON record per scenario and implementation: its
outcome, and for an expected failure or a scenario not applicable the reason (read by
``python -m conformance`` for its table and by ``python -m docs``).
"""

import json
import pathlib
import re

import pytest

from conformance import manifest
from steps import EXPECTED_FAILURE, WORKER_POOL
from workqueue.testing import plugin as workqueue_plugin

_IMPLS = pytest.StashKey[list]()


def pytest_addoption(parser):
    group = parser.getgroup("conformance", "the conformance suite (docs/conformance.md)")
    group.addoption("--impl", default="all",
                    help="implementations to run, comma-separated ids, or 'all' (default)")
    group.addoption("--manifest", action="append", default=[],
                    help="the manifest whose implementations to run (repeatable; default: the project's own)")
    group.addoption("--impl-file", action="append", default=[],
                    help="a manifest of implementations of your own (repeatable); its ids join the project's")
    group.addoption("--conformance-results", default=None, help="write each cell's outcome to this JSON file")


def implementations(config):
    """The implementations asked for, in manifest order: the project's, then the files'."""
    if _IMPLS not in config.stash:
        try:
            known = []
            for path in config.getoption("manifest") or [manifest.BUILTIN]:
                known += manifest.load(path)
            for path in config.getoption("impl_file"):
                known += manifest.load(path)
            chosen = manifest.select(known, config.getoption("impl"))
        except manifest.ManifestError as exc:
            raise pytest.UsageError(str(exc)) from None
        config.stash[_IMPLS] = chosen
    return config.stash[_IMPLS]


def pytest_generate_tests(metafunc):
    if "worker_under_test" in metafunc.fixturenames:
        impls = implementations(metafunc.config)
        metafunc.parametrize("worker_under_test", impls, ids=[impl.id for impl in impls])


def pytest_bdd_before_scenario(request, feature, scenario):
    """Record which cell this is; arm the implementation's expected failure for this version."""
    impl = request.getfixturevalue("worker_under_test")
    if impl is None:
        return
    node = request.node
    rule = scenario.rule.name if scenario.rule is not None else ""
    tags = set(scenario.tags) | set(feature.tags) | (set(scenario.rule.tags) if scenario.rule else set())
    node.user_properties.append(("conformance", json.dumps({
        "implementation": impl.id, "feature": feature.name, "uri": feature.rel_filename, "rule": rule,
        "scenario": scenario.name, "line": scenario.line_number})))
    for tag in sorted(tags):
        if tag.startswith("needs_") and (why := impl.lacks(tag[len("needs_"):])):
            pytest.skip(why)
    version = workqueue_plugin.session_broker(request.config).version
    if why := impl.unsupported(version):
        pytest.skip(why)
    for expected in impl.expected:
        if expected.applies(scenario.name, version):
            reason = (f"{impl.id}: {expected.mechanism} ({', '.join(expected.references)}); if this passes, "
                      f"{impl.id} keeps the guarantee on RabbitMQ {version}: update its manifest entry")
            node.stash[EXPECTED_FAILURE] = {"reason": reason, "step": expected.step, "error": expected.error}
            if expected.finding:
                node.user_properties.append(("finding", expected.finding))
            break


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """The settings each worker of the cell was started with (the project's worker options,
    which the contract gives another implementation as its WORKER_* variables)."""
    report = yield
    pool = item.stash.get(WORKER_POOL, None)
    if report.when == "call" and pool is not None:
        report.user_properties.append(("settings", settings(pool)))
        if call.excinfo is not None:
            # What the workers printed, shown under the failure (terminal, JUnit) and kept in
            # results.json: a cell's symptom with the worker's own words beside it.
            output = {w.name: {"stdout": w.output_lines()[-OUTPUT_LINES:], "stderr": w.errors[-OUTPUT_LINES:]}
                      for w in pool}
            for name, streams in output.items():
                for stream, lines in streams.items():
                    report.sections.append((f"worker {name} {stream} (last {OUTPUT_LINES} lines)",
                                            "\n".join(lines) or "(nothing)"))
            report.user_properties.append(("output", json.dumps(output)))
    return report


#: Lines of each worker's stdout and stderr kept for a cell that did not pass.
OUTPUT_LINES = 20


def settings(pool):
    """"alice: --prefetch 1 --heartbeat 2; bob: ...": each worker's options, less those every
    scenario gives (its name, the work's pace, the queue's name)."""
    common = {"--name", "--seconds-per-dot", "--queue"}
    out = []
    for worker in pool:
        args, kept = list(worker.options), []
        while args:
            option = args.pop(0)
            value = args.pop(0) if args and not args[0].startswith("--") else None
            if option not in common:
                kept.append(option if value is None else f"{option} {value}")
        out.append(f"{worker.name}: {' '.join(kept)}")
    return "; ".join(out)


def pytest_runtest_logreport(report):
    """Each cell's outcome, on the process that writes the results (xdist's controller)."""
    record = next((json.loads(v) for k, v in report.user_properties if k == "conformance"), None)
    if record is None:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        outcome, reason = "passed", None
        properties = dict(report.user_properties)
        step, symptom = properties.get("failed_step"), properties.get("symptom")
        if hasattr(report, "wasxfail"):
            outcome, reason = "expected failure", report.wasxfail
        elif report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            reason = re.sub(r"^Skipped: ", "", reason)
            outcome = "not applicable" if reason.startswith("not applicable") else "skipped"
        elif report.failed:
            outcome = "failed"
            crash = getattr(report.longrepr, "reprcrash", None)
            whole = " ".join(str(report.longrepr).split())[-600:]
            reason = symptom or (" ".join(crash.message.split()) if crash else whole)
        _results.append({**record, "outcome": outcome, "reason": reason, "step": step, "symptom": symptom,
                         "finding": properties.get("finding"), "settings": properties.get("settings"),
                         "output": json.loads(properties["output"]) if "output" in properties else None,
                         "nodeid": report.nodeid})


_results: list = []     # the cells of this run, as their reports arrive


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    config = session.config
    path = config.getoption("conformance_results")
    if not path or hasattr(config, "workerinput"):
        return
    facts = workqueue_plugin.run_facts(config) or {}
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    impls = [{"id": i.id, "title": i.title, "language": i.language, "client": i.client}
             for i in implementations(config)]
    target.write_text(json.dumps({**facts, "implementations": impls, "cells": _results}, indent=2) + "\n")
