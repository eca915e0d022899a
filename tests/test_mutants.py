"""The mutants' verdicts: killed only by a Then's own check; anything else is an ERROR that says
where it failed. A small project of scenarios, each failing in one way, is run with the verdict
plugin (no broker needed: what is checked is the classification, not RabbitMQ)."""

import os
import pathlib
import textwrap

import pytest

from mutants.__main__ import Row, classify, judge_run, load, not_killed, read_verdicts

ROOT = pathlib.Path(__file__).resolve().parent.parent

FEATURE = textwrap.dedent('''
    Feature: Verdicts
      Scenario: A Then catches it
        Given a queue
        When a task is sent
        Then the worker does the task

      Scenario: A Given fails on an assertion
        Given a queue that fails its own assertion
        When a task is sent
        Then the worker does the task

      Scenario: A fixture of a Then fails
        Given a queue
        Then a step whose broker does not start

      Scenario: A worker crashes at start
        Given a queue
        Then a worker that never consumed is waited on

      Scenario: A Then waits in vain
        Given a queue
        Then a wait runs out

      Scenario: A Then raises something that is not a check
        Given a queue
        Then a step breaks

      Scenario: Nothing fails
        Given a queue
        Then all is well

      Scenario: A command crashes and a Then sees its exit code
        Given a queue
        When a command crashes with a traceback
        Then the command exited with code 0
''')

STEPS = textwrap.dedent('''
    import pytest
    from pytest_bdd import given, scenarios, then, when

    from workqueue.testing.processes import WorkerDidNotStart

    scenarios("verdicts.feature")

    @pytest.fixture
    def broken_broker():
        pytest.fail("broker (node) could not be started: no rabbitmq-server", pytrace=False)

    @given("a queue")
    def _():
        pass

    @given("a queue that fails its own assertion")
    def _():
        assert 1 == 2, "the Given's own check"

    @when("a task is sent")
    def _():
        pass

    @then("the worker does the task")
    def _():
        assert [] == ["task"], "the worker did not do the task"

    @then("a step whose broker does not start")
    def _(broken_broker):
        pass

    @then("a worker that never consumed is waited on")
    def _():
        raise WorkerDidNotStart("worker alice exited with code 1 before 1 task(s) done")

    @then("a wait runs out")
    def _():
        raise TimeoutError("timed out after 60 s waiting for the long task, redelivered")

    @then("a step breaks")
    def _():
        {}["missing"]

    @then("all is well")
    def _():
        pass

    @when("a command crashes with a traceback", target_fixture="crashed_run")
    def _():
        from workqueue.testing.processes import note_crashes
        stderr = ["Traceback (most recent call last):", '  File "new_task.py", line 3, in main',
                  "    print(mesage)", "NameError: name 'mesage' is not defined"]
        note_crashes("workqueue.new_task", stderr)
        return 1

    @then("the command exited with code 0")
    def _(crashed_run):
        assert crashed_run == 0, "new_task exited with code 1"

    @pytest.mark.xfail(strict=True, reason="a known defect")
    def test_known_defect_gone():
        pass

    @pytest.mark.xfail(strict=True, reason="a known defect")
    def test_known_defect_still_there():
        assert False, "the defect's symptom"

    def test_plain_check():
        assert 2 + 2 == 5, "a plain test's own check"

    def test_plain_setup_error(broken_broker):
        pass
''')


@pytest.fixture
def verdicts(pytester, tmp_path, monkeypatch):
    pytester.makefile(".feature", verdicts=FEATURE)
    pytester.makepyfile(test_verdicts=STEPS)
    path = tmp_path / "verdicts.jsonl"
    monkeypatch.setenv("WORKQUEUE_VERDICTS", str(path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    pytester.runpytest_subprocess("-p", "mutants.verdict", "-p", "no:cacheprovider", "-p", "no:pytest_rabbitmq",
                                  "-p", "no:workqueue")
    return {nodeid.split("::")[-1]: record for nodeid, record in read_verdicts(path).items()}


def test_only_a_then_or_a_plain_tests_own_check_kills(verdicts):
    got = {name: classify(record)[0] for name, record in verdicts.items() if record["outcome"] == "failed"}
    assert got == {
        "test_a_then_catches_it": "killed",
        "test_a_given_fails_on_an_assertion": "ERROR",
        "test_a_fixture_of_a_then_fails": "ERROR",
        "test_a_worker_crashes_at_start": "ERROR",
        "test_a_then_waits_in_vain": "killed",
        "test_a_then_raises_something_that_is_not_a_check": "ERROR",
        "test_a_command_crashes_and_a_then_sees_its_exit_code": "ERROR",
        "test_known_defect_gone": "killed",
        "test_plain_check": "killed",
        "test_plain_setup_error": "ERROR",
    }, got
    assert verdicts["test_nothing_fails"]["outcome"] == "passed"


def test_each_verdict_names_the_step_and_the_first_line_of_its_message(verdicts):
    assert classify(verdicts["test_a_then_catches_it"]) == (
        "killed", "Then the worker does the task: AssertionError: the worker did not do the task")
    result, text = classify(verdicts["test_a_given_fails_on_an_assertion"])
    assert text == ("caught in a Given, not a Then: Given a queue that fails its own assertion: "
                    "AssertionError: the Given's own check")
    assert classify(verdicts["test_a_fixture_of_a_then_fails"])[1].startswith(
        "a fixture of the step failed: Then a step whose broker does not start: Failed: broker (node) could not")
    assert classify(verdicts["test_a_worker_crashes_at_start"])[1].startswith(
        "a worker crashed at start: Then a worker")
    assert classify(verdicts["test_plain_setup_error"])[1].startswith("setup error:")


def test_a_crash_of_the_code_under_test_is_an_error_and_a_defects_xpass_a_kill(verdicts):
    assert classify(verdicts["test_a_command_crashes_and_a_then_sees_its_exit_code"]) == (
        "ERROR", "crashed: workqueue.new_task crashed: NameError: name 'mesage' is not defined; then "
                 "Then the command exited with code 0: AssertionError: new_task exited with code 1")
    result, text = classify(verdicts["test_known_defect_gone"])
    assert (result, text.split(":")[0]) == ("killed", "XPASS(strict)"), text


def test_a_known_defects_scenario_failing_as_expected_is_no_survivor(verdicts):
    """A row's scenario that is a strict expected failure on the run's version fails with or
    without the edit: the row is an ERROR that says so, not SURVIVED (seen: hint-inverted on the
    4.3.6 container, whose scenario is defect transient_nonexcl_queues_denied there)."""
    still = verdicts["test_known_defect_still_there"]
    assert still["outcome"] == "xfailed", still
    result, text = judge_run(0, [verdicts["test_nothing_fails"], still])
    assert result == "ERROR" and "fails with or without the edit" in text, text
    assert judge_run(0, [verdicts["test_nothing_fails"]]) == ("SURVIVED", "")
    assert judge_run(1, [verdicts["test_known_defect_gone"]])[0] == "killed"
    assert judge_run(1, [verdicts["test_a_given_fails_on_an_assertion"]])[0] == "ERROR"


def test_a_step_the_row_names_may_catch_it_besides_a_then(verdicts):
    record = verdicts["test_a_given_fails_on_an_assertion"]
    assert classify(record, expect=r"^Given a queue that fails")[0] == "killed"
    assert classify(record, expect=r"^When ")[0] == "ERROR"


def test_the_rows_that_fail_the_run_come_last_with_why():
    """What fails a run is printed after the table and its notes, where a log's tail shows it
    (CI keeps the tail: on 2026-12-06 a run failed and its tail showed only rows that passed)."""
    rows = [Row("a", "", [], [], result="killed", control="passed"),
            Row("b", "", [], [], result="elsewhere"),
            Row("c", "", [], [], result="ERROR", control="features/x.feature::s failed: timed out",
                detail="control failed: the scenarios fail without the mutant"),
            Row("d", "", [], [], result="SURVIVED", control="passed")]
    assert not_killed(rows[:2]) == ""
    assert not_killed(rows).splitlines() == [
        "mutants: 2 row(s) not killed:",
        "  c: ERROR: control: features/x.feature::s failed: timed out; control failed: the scenarios fail without "
        "the mutant",
        "  d: SURVIVED: no detail"]


def test_every_row_is_well_formed():
    rows = load()
    assert len(rows) >= 28, len(rows)
    for row in rows:
        assert row.scenarios and row.edits, row.id
        for scenario in row.scenarios:
            module = ROOT / scenario.split("::")[0]
            assert module.is_file(), (row.id, scenario)
        for edit in row.edits:
            assert (ROOT / edit["file"]).read_text().count(edit["find"]) == 1, (row.id, edit["file"])


def test_the_readme_shows_every_row_as_run():
    """mutants/README.md's "As run" tables are the runs CI makes: every row of table.toml is in
    them, killed where its path exists (a row of some versions only is "elsewhere" on the others)."""
    text = (ROOT / "mutants" / "README.md").read_text()
    section = text[text.index("## As run"):].split("\n## ", 1)[0]
    results: dict[str, set[str]] = {}
    for block in section.split("```")[1::2]:
        for line in block.splitlines():
            fields = line.split()
            if len(fields) >= 6 and fields[-1].isdigit() and fields[-2] in ("killed", "elsewhere", "SURVIVED", "ERROR"):
                results.setdefault(fields[0], set()).add(fields[-2])
    for row in load():
        assert "killed" in results.get(row.id, set()), (row.id, results.get(row.id))
        assert results[row.id] <= {"killed", "elsewhere"}, (row.id, results[row.id])
