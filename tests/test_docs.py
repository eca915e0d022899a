"""The specification's page (`make docs`): built from features/ and run reports, read in a real
browser. The runs here are written by the test (three versions, one failure, one known defect),
so that the page's every kind of cell is shown; CI builds the page from its real runs and
checks it with the same browser reader (python -m docs.browser)."""

import html
import json
import os
import xml.etree.ElementTree as ET

import pytest

from docs import model
from docs.__main__ import ROOT, build
from docs.__main__ import main as docs_main
from workqueue.testing import debian

RUNS = (("3.10.8", "node"), ("4.0.5", "container"), ("4.3.6", "container"))
FAILING = ("reliability/acknowledgment.feature", "A killed worker's task is redelivered", "4.0.5")
SECRET = "s3cr3t-Pa55"
MESSAGE = f"AssertionError: bob did 0 tasks, not 1 (amqp://wq:{SECRET}@127.0.0.1:5672/x)"


def _run_dir(tmp_path, version, backend, chapters):
    """A run's reports as `make test` writes them, every scenario passing except FAILING and
    the known defects of ``version``."""
    directory = tmp_path / f"{backend}-{version}"
    directory.mkdir()
    features, suite = {}, ET.Element("testsuite")
    for feature, scenario in model.all_scenarios(chapters):
        if model.other_major(scenario, model.Run(directory, version, backend, None, None, None, None, 0,
                                                 {}, {}, {})):
            continue                                          # deselected by its version tag
        for row, example in enumerate(scenario.examples or [None]):
            name = model._example_name(scenario, example) if example else scenario.name
            test = model._python_name(scenario.name) + (f"[{'-'.join(example.values())}]" if example else "")
            fails = (feature.uri, scenario.name, version) == FAILING
            defect = any(version in versions for _, _, versions, _ in scenario.defects_of(row if example else None))
            steps = []
            for i, step in enumerate(scenario.steps):
                last = i == len(scenario.steps) - 1
                status = ("failed" if fails else "skipped" if defect else "passed") if last else "passed"
                result = {"status": status, "duration": 1}
                if status == "failed":
                    result["error_message"] = f"def test():\n>   assert done == 1\nE   {MESSAGE}\n"
                steps.append({"keyword": step.keyword, "name": step.text, "line": step.line,
                              "match": {"location": ""}, "result": result})
            features.setdefault(feature.uri, {"uri": feature.uri, "name": feature.name, "elements": []})
            features[feature.uri]["elements"].append({"id": test, "name": name, "line": scenario.line,
                                                      "steps": steps})
            case = ET.SubElement(suite, "testcase", classname="tests.x", name=test)
            if fails:
                ET.SubElement(case, "failure", message=MESSAGE).text = f"E   {MESSAGE}"
            elif defect:
                ET.SubElement(case, "skipped", type="pytest.xfail", message="known defect")
    ET.SubElement(suite, "testcase", classname="tests.test_package", name="test_a_library_test")
    (directory / "cucumber.json").write_text(json.dumps(list(features.values())))
    ET.ElementTree(suite).write(directory / "junit.xml")
    (directory / "run.json").write_text(json.dumps({"rabbitmq": version, "backend": backend, "commit": "0" * 40,
                                                    "started": "2026-11-25T10:00:00+00:00", "exitstatus": 1,
                                                    "cucumber": "cucumber.json", "junit": "junit.xml",
                                                    "debian": debian.describe(PACKAGES.get(version), "upstream")}))
    return directory


#: The Debian packages of the versions the runs above name.
PACKAGES = {"3.10.8": "3.10.8-1.1+deb12u1", "4.0.5": "4.0.5-6+deb13u2", "4.3.6": "4.3.6-1"}


#: A conformance run as `python -m conformance` writes it: one implementation's each kind of cell.
CONFORMANCE = {"rabbitmq": "3.10.8", "backend": "node",
               "implementations": [{"id": "reference", "title": "t", "language": "Python", "client": "pika"},
                                   {"id": "go-amqp091", "title": "t", "language": "Go", "client": "amqp091-go"}],
               "cells": [{"implementation": i, "feature": "Poison tasks", "rule": "A failing task is dead-lettered",
                          "uri": "production/poison.feature", "line": 9, "scenario": f"A poison task on a {q} queue",
                          "outcome": o, "reason": r, "nodeid": "x"}
                         for i, q, o, r in [("reference", "classic", "passed", None),
                                            ("reference", "quorum", "passed", None),
                                            ("go-amqp091", "classic", "expected failure", "it loops, for ever"),
                                            ("go-amqp091", "quorum", "not applicable",
                                             "not applicable: go-amqp091 lacks quorum")]]}


@pytest.fixture
def page(tmp_path):
    chapters = model.load_features(ROOT / "features")
    runs = [_run_dir(tmp_path, v, b, chapters) for v, b in reversed(RUNS)]
    results = tmp_path / "conformance.json"
    results.write_text(json.dumps(CONFORMANCE))
    out = tmp_path / "specification.html"
    build(runs, out, conformance=[results])
    return out, chapters


def test_every_scenario_has_a_cell_per_version_with_its_outcome(page):
    out, chapters = page
    chapters = model.load_features(ROOT / "features")
    runs = sorted((model.load_run(d) for d in out.parent.glob("*-*") if d.is_dir()), key=lambda r: r.key())
    assert [r.version for r in runs] == [v for v, _ in RUNS]          # columns in version order
    model.attach(chapters, runs)
    seen = {}
    for feature, scenario in model.all_scenarios(chapters):
        for run, column in zip(runs, scenario.results, strict=True):
            for row, (label, outcome) in enumerate(column):
                seen[(feature.uri, scenario.name, label, run.version)] = outcome
                expected = (model.Status.NOT_APPLICABLE if model.other_major(scenario, run)
                            else model.Status.FAILED if (feature.uri, scenario.name, run.version) == FAILING
                            else model.Status.EXPECTED_FAILURE
                            if any(run.version in v for _, _, v, _ in
                                   scenario.defects_of(row if scenario.examples else None))
                            else model.Status.PASSED)
                assert outcome.status is expected, (feature.uri, scenario.name, label, run.version, outcome)
    failing = seen[(FAILING[0], FAILING[1], "", FAILING[2])]
    [last] = [s.steps[-1] for f, s in model.all_scenarios(chapters) if (f.uri, s.name) == FAILING[:2]]
    assert failing.step == f"{last.keyword} {last.text}"
    assert SECRET not in failing.message and "bob did 0 tasks" in failing.message
    assert SECRET not in out.read_text() and "***" in out.read_text()


def test_the_page_in_a_browser_names_every_feature_scenario_and_version(page):
    from docs.browser import missing, read_page
    out, chapters = page
    screenshot = ROOT / "reports" / "specification-test.png"
    seen = read_page(out, screenshot=screenshot)
    assert missing(seen, chapters, [v for v, _ in RUNS]) == []
    assert seen["versions"] == ["3.10.8", "4.0.5", "4.3.6"]
    [failure] = seen["failures"]
    assert 'RabbitMQ 4.0.5 (container): failed at And the queue "task_queue" holds no tasks' in failure, failure
    assert "bob did 0 tasks, not 1" in failure, failure
    assert SECRET not in seen["text"]
    assert "expected failure" in seen["text"] and "not applicable" in seen["text"]
    assert screenshot.stat().st_size > 10_000
    assert seen["conformance"] == {"3.10.8": ["reference", "go-amqp091"]}
    assert missing(seen, chapters, [], ["reference", "go-amqp091", "celery-reliable"]) == [
        "implementation celery-reliable has no column in the conformance table of RabbitMQ 3.10.8"]


def test_the_conformance_table_sums_up_each_guarantee_per_implementation(page):
    out, _ = page
    table = model.load_conformance([out.parent / "conformance.json"])
    guarantee = ("Poison tasks", "A failing task is dead-lettered")
    assert table.summary(guarantee, "reference", "3.10.8") is model.Status.PASSED
    assert table.summary(guarantee, "go-amqp091", "3.10.8") is model.Status.EXPECTED_FAILURE
    assert table.summary(guarantee, "celery-reliable", "3.10.8") is model.Status.NOT_RUN
    text = out.read_text()
    assert "go-amqp091</b> on 3.10.8, A poison task on a classic queue: it loops, for ever" in text
    assert "not applicable: go-amqp091 lacks quorum" in text


def test_no_run_is_a_one_line_error_with_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        docs_main([])
    assert exit_.value.code == 2
    assert "no runs: run `make test` first" in capsys.readouterr().err


def test_a_run_without_its_record_is_named_with_exit_2(tmp_path, capsys):
    (tmp_path / "half").mkdir()
    assert docs_main([str(tmp_path / "half"), "-o", str(tmp_path / "p.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "half: no run.json" in err[0], err
    assert not (tmp_path / "p.html").exists()


def test_scenarios_link_to_their_feature_file_and_line(page):
    out, chapters = page
    features = os.path.relpath(ROOT / "features", out.parent)
    [line] = [s.line for f, s in model.all_scenarios(chapters)
              if (f.uri, s.name) == ("reliability/acknowledgment.feature", "A killed worker's task is redelivered")]
    assert line == next(n for n, text in enumerate((ROOT / "features/reliability/acknowledgment.feature")
                                                   .read_text().splitlines(), 1) if "A killed worker's task" in text)
    assert f'href="{features}/reliability/acknowledgment.feature#L{line}"' in out.read_text()


def test_the_header_names_each_runs_package_the_patch_undone_and_what_it_lacks(page):
    out, _ = page
    text = " ".join(html.unescape(out.read_text()).split())
    assert "Debian's rabbitmq-server 4.3.6-1, run with upstream's defaults" in text
    assert ("<code>do-not-deprecate-transient_nonexcl_queues.patch</code>" in text
            and "undone here by <code>deprecated_features.permit.transient_nonexcl_queues = false</code>" in text)
    assert "Of its upstream line it lacks 4.0.6 to 4.0.9" in text


def test_the_upgrade_section_is_generated_from_the_outcomes_that_differ(page):
    out, _ = page
    text = html.unescape(out.read_text())
    section = text[text.index('id="upgrading"'):text.index("</section>", text.index('id="upgrading"'))]
    lines = [" ".join(line.split()) for line in section.split("<li>")[1:]]
    transient = [line for line in lines if "A transient queue is gone" in line]
    assert len(transient) == 1 and "passed to ⚠ expected failure: RabbitMQ 4.3 refuses a transient" in transient[0]
    assert section.index("<h3>4.0.5 to 4.3.6</h3>") < section.index("A transient queue is gone")
    assert not any("A poison task" in line for line in lines)      # the same outcome on every version
    # An outline's rows each take the defects of their Examples block, and say so by title.
    nack = [line for line in lines if "a task handed back with <method> (basic.nack)" in line]
    assert len(nack) == 1 and "expected failure: RabbitMQ 4.3 does not count a basic.nack" in nack[0], nack
    assert not any("(basic.reject)" in line for line in lines)
