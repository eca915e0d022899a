"""The conformance suite's contract, with no broker: manifests and their one-line errors, the
project's worker options said in the contract's variables, events files, the table."""

import pathlib

import pytest

from conformance import manifest
from conformance.__main__ import summary, table
from workqueue.testing.contract import NotApplicable, worker_environment
from workqueue.testing.processes import read_events

ENTRY = """
[mine]
title = "my worker"
language = "Go"
client = "amqp091-go v1.16.0"
command = ["./worker"]
capabilities = ["prefetch", "redelivered"]
"""


def load(tmp_path, text):
    path = tmp_path / "manifest.toml"
    path.write_text(text)
    return manifest.load(path)


def test_the_projects_manifest_loads_and_names_seven_implementations_besides_the_reference():
    impls = manifest.load(manifest.BUILTIN)
    others = [i for i in impls if not i.reference]
    assert len(others) >= 7 and [i.id for i in impls if i.reference] == ["reference"]
    for impl in impls:
        assert impl.directory.is_dir(), impl.id
        for expected in impl.expected:          # each finding names a mechanism and a reference
            assert expected.mechanism and expected.references, (impl.id, expected.scenario)


def test_a_manifest_entry_paths_start_at_the_manifest(tmp_path):
    [impl] = load(tmp_path, ENTRY)
    assert impl.directory == tmp_path and impl.capabilities == {"prefetch", "redelivered"}
    assert impl.events == set(manifest.EVENTS) and impl.queue == "contract" and impl.send is None


@pytest.mark.parametrize("change, says", [
    (("capabilities = [\"prefetch\", \"redelivered\"]", "capabilities = [\"telepathy\"]"),
     "[mine].capabilities: unknown capability 'telepathy'"),
    (("command = [\"./worker\"]\n", ""), "[mine]: 'command' is required"),
    (("[mine]", '["Mine_1"]'), "an id is lower-case letters, digits and dashes"),
    (("client = ", "queue = \"own\"\nclient = "), "[mine].send: a framework that declares its own queue needs"),
    (("command = [\"./worker\"]", "command = [\"./worker\"]\nevents = [\"consuming\"]"),
     "[mine].events: must hold 'received' and 'done'"),
    (("redelivered\"]", "redelivered\"]\n[[mine.expected]]\nscenario = \"x\"\n"
                          "step = \"Then y\"\nerror = \"(\"\nmechanism = \"m\"\nreferences = [\"r\"]"),
     "[mine].expected[0].error: not a regular expression"),
    (("\"prefetch\", ", "\"prefetch\", \"reconnects\", "),
     "[mine].capabilities: 'reconnects' is a behaviour, not a capability: every worker runs the broker restart"),
    (("redelivered\"]", "redelivered\"]\n[[mine.expected]]\nfinding = \"telepathy\"\nscenario = \"x\"\n"
                          "step = \"Then y\"\nerror = \"z\""),
     "[mine].expected[0].finding: no finding 'telepathy' (known: "),
    (("redelivered\"]", "redelivered\"]\n[[mine.expected]]\nfinding = \"mine-loops\"\nscenario = \"x\"\n"
                          "step = \"Then y\"\nerror = \"z\"\nmechanism = \"m\"\n"
                          "[findings.mine-loops]\ntitle = \"t\"\nmechanism = \"m\"\nreferences = [\"r\"]"),
     "[mine].expected[0]: a finding gives the mechanism and references: leave them out here"),
    (("[mine]", "[findings.x]\ntitle = \"t\"\nreferences = [\"r\"]\n[mine]"),
     "[findings].x.mechanism: is required"),
    (("command = [\"./worker\"]", "command = [\"./worker\"]\nheartbeat = 0"),
     "[mine].heartbeat: must be a whole number of seconds, 1 to 60"),
    (("command = [\"./worker\"]", "command = [\"./worker\"]\ndead_letter = \"{queue}.XQ\""),
     "[mine].dead_letter: only a framework with a queue of its own (queue = \"own\") names its dead-letter queue"),
])
def test_a_bad_manifest_is_one_line_naming_the_entry_and_key(tmp_path, change, says):
    with pytest.raises(manifest.ManifestError) as error:
        load(tmp_path, ENTRY.replace(*change))
    message = str(error.value)
    assert says in message and "\n" not in message, message


def test_an_expected_failure_takes_its_mechanism_from_a_finding_written_once(tmp_path):
    text = ENTRY + (
        '[[mine.expected]]\nfinding = "mine-loops"\nscenario = "A poison task on a classic queue"\n'
        'step = "Then y"\nerror = "loops"\nversions = ["4.3.6"]\n'
        '[[mine.expected]]\nfinding = "mine-loops"\nscenario = "A poison task on a quorum queue"\n'
        'step = "Then y"\nerror = "loops"\n'
        '[findings.mine-loops]\ntitle = "it loops"\nmechanism = """nacks\n with requeue"""\nreferences = ["r"]\n')
    [impl] = load(tmp_path, text)
    assert [(e.finding, e.mechanism, e.references, e.versions) for e in impl.expected] == [
        ("mine-loops", "nacks with requeue", ("r",), ("4.3.6",)), ("mine-loops", "nacks with requeue", ("r",), None)]


def test_a_manifest_may_name_the_projects_findings(tmp_path):
    known = manifest.findings(manifest.BUILTIN)
    some = sorted(known)[0]
    [impl] = load(tmp_path, ENTRY + f'[[mine.expected]]\nfinding = "{some}"\nscenario = "x"\n'
                                    'step = "Then y"\nerror = "z"\n')
    assert impl.expected[0].mechanism == known[some].mechanism


def test_a_missing_or_broken_manifest_is_one_line(tmp_path):
    for path, says in ((tmp_path / "none.toml", "no such manifest"), (tmp_path / "bad.toml", "not TOML")):
        if path.name == "bad.toml":
            path.write_text("[mine\n")
        with pytest.raises(manifest.ManifestError) as error:
            manifest.load(path)
        assert says in str(error.value) and "\n" not in str(error.value)


def test_the_workers_options_become_the_contracts_variables(tmp_path):
    [impl] = load(tmp_path, ENTRY.replace('"prefetch", ', '"prefetch", "quorum", "dead_letter", "fail_on", '))
    env = worker_environment(impl, "amqp://u:p@127.0.0.1:5672/v", [
        "--name", "alice", "--seconds-per-dot", "0.2", "--queue", "task_queue", "--queue-type", "quorum",
        "--delivery-limit", "3", "--dead-letter", "task_queue.dead", "--prefetch", "1",
        "--handler", "workqueue.testing.handlers:fail_on_poison"])
    assert env == {"WORKER_URL": "amqp://u:p@127.0.0.1:5672/v", "WORKER_NAME": "alice",
                   "WORKER_CONNECTION_NAME": "workqueue worker alice", "WORKER_SECONDS_PER_DOT": "0.2",
                   "WORKER_QUEUE": "task_queue", "WORKER_QUEUE_TYPE": "quorum", "WORKER_DELIVERY_LIMIT": "3",
                   "WORKER_DEAD_LETTER": "task_queue.dead", "WORKER_PREFETCH": "1", "WORKER_FAIL_ON": "poison"}


@pytest.mark.parametrize("options, url, says", [
    (["--heartbeat", "1"], "amqp://h", "mine lacks heartbeat"),
    (["--queue-type", "quorum"], "amqp://h", "mine lacks quorum"),
    (["--auto-ack"], "amqp://h", "mine lacks auto_ack"),
    (["--no-reconnect"], "amqp://h", "mine has no option not to reconnect"),
    (["--handler", "workqueue.testing.handlers:fail_on_poison"], "amqp://h", "mine lacks fail_on"),
    ([], ["amqp://a", "amqp://b"], "mine lacks several_urls"),
    (["--frobnicate", "1"], "amqp://h", "the contract has no equivalent of --frobnicate"),
])
def test_an_option_the_implementation_cannot_honour_is_not_applicable_with_its_reason(tmp_path, options, url, says):
    [impl] = load(tmp_path, ENTRY)
    with pytest.raises(NotApplicable) as reason:
        worker_environment(impl, url, options)
    assert str(reason.value).startswith("not applicable: ") and says in str(reason.value)


def test_automatic_acknowledgment_is_a_flag_of_the_contract(tmp_path):
    """--auto-ack takes no value: WORKER_AUTO_ACK=1 (a pre-settled link, for an AMQP 1.0 worker)."""
    [impl] = load(tmp_path, ENTRY.replace('"prefetch", ', '"prefetch", "auto_ack", '))
    assert worker_environment(impl, "amqp://h", ["--auto-ack", "--prefetch", "1"]) == {
        "WORKER_URL": "amqp://h", "WORKER_AUTO_ACK": "1", "WORKER_PREFETCH": "1"}


def test_a_worker_that_takes_a_prefetch_limit_only_is_not_applicable_for_no_limit(tmp_path):
    """Spring AMQP's container prefetches at least one (max(prefetch, batchSize)): a limit is
    passed on, a scenario asking for no limit (0) is not applicable, and says so."""
    [impl] = load(tmp_path, ENTRY.replace('"prefetch", ', '"prefetch_limit_only", '))
    assert worker_environment(impl, "amqp://h", ["--prefetch", "4"]) == {"WORKER_URL": "amqp://h",
                                                                        "WORKER_PREFETCH": "4"}
    with pytest.raises(NotApplicable, match="^not applicable: mine lacks prefetch "):
        worker_environment(impl, "amqp://h", ["--prefetch", "0"])


def test_an_implementation_for_rabbitmq_4_is_not_applicable_on_an_older_broker(tmp_path):
    """An AMQP 1.0 client of RabbitMQ 4 (its management over AMQP 1.0) has no cell on 3.10."""
    [impl] = load(tmp_path, ENTRY + 'rabbitmq = "4.0"\n')
    assert impl.unsupported("3.10.8") == "not applicable: mine needs RabbitMQ 4.0 or later (this broker is 3.10.8)"
    assert impl.unsupported("4.0.5") is None and impl.unsupported("4.3.6") is None
    assert load(tmp_path, ENTRY)[0].unsupported("3.10.8") is None
    with pytest.raises(manifest.ManifestError, match=r"\[mine\]\.rabbitmq: must be a RabbitMQ version"):
        load(tmp_path, ENTRY + 'rabbitmq = "four"\n')


def test_an_events_file_is_read_whole_lines_only():
    text = ('{"event": "consuming"}\n{"event": "received", "body": "task 1.", "redelivered": true}\n'
            'not json\n{"event": "gossip"}\n{"event": "done", "body": "task 1."}\n{"event": "rec')
    assert read_events(text) == [("consuming", None, False), ("received", "task 1.", True), ("done", "task 1.", False)]


def test_the_table_sums_each_guarantee_per_implementation():
    cells = [{"implementation": i, "feature": "F", "rule": "R", "scenario": s, "outcome": o, "reason": r}
             for i, s, o, r in [("a", "s1", "passed", None), ("a", "s2", "not applicable", "not applicable: x"),
                                ("b", "s1", "expected failure", "why"), ("b", "s2", "passed", None)]]
    assert summary(["passed", "not applicable"]) == "passed"
    assert summary(["not applicable", "not applicable"]) == "not applicable"
    assert summary(["passed", "expected failure", "failed"]) == "failed"
    text = table({"rabbitmq": "3.10.8", "backend": "node", "cells": cells,
                  "implementations": [{"id": "a"}, {"id": "b"}]})
    assert "| R | ✔ | ⚠ |" in text and "- ⚠ b: s1: why" in text and "- – a: s2: not applicable: x" in text
    assert pathlib.Path(manifest.BUILTIN).exists()


def test_every_expected_failure_names_a_conformance_scenario_and_one_of_its_steps():
    """A renamed scenario or step would leave an entry that never arms: caught here."""
    from docs import model
    root = pathlib.Path(__file__).resolve().parents[2]
    steps = {}
    for _, scenario in model.all_scenarios(model.load_features(root / "features")):
        if "conformance" not in scenario.tags:
            continue
        for example in scenario.examples or [None]:
            name = model._example_name(scenario, example) if example else scenario.name
            steps[name] = {f"{s.keyword} {s.text}" for s in scenario.steps}
    for impl in manifest.load(manifest.BUILTIN):
        for expected in impl.expected:
            assert expected.scenario in steps, (impl.id, expected.scenario)
            for step in expected.step if isinstance(expected.step, tuple) else [expected.step]:
                assert step in steps[expected.scenario], (impl.id, expected.scenario, step)


def test_the_scenario_list_names_every_conformance_scenario_with_its_steps_and_needs():
    from conformance.__main__ import scenarios_text
    text = scenarios_text()
    assert text.startswith("Every scenario: a task takes 0.2 s per dot")
    assert "  Scenario: SIGTERM with tasks waiting for the worker\n" in text    # run for every worker
    assert "    example: <event> = crashes and recovers" in text
    assert '    Given worker "alice" with a short heartbeat is working on a task of 8 heartbeats' in text


def test_each_run_has_a_directory_of_its_own_and_a_full_run_is_the_backends(tmp_path):
    from conformance.__main__ import run_directory
    root = tmp_path / "conformance"
    (root / "node").mkdir(parents=True)                      # a run of before, a plain directory
    (root / "node" / "results.json").write_text("{}")
    first = run_directory(root, "node", True, "20261206-010000")
    partial = run_directory(root, "node", False, "20261206-010000")
    assert first == root / "runs" / "20261206-010000-node" and partial == root / "runs" / "20261206-010000-node-2"
    assert (root / "node").resolve() == first.resolve()
    [old] = [p for p in (root / "runs").iterdir() if p.name.endswith("-node-old")]
    assert (old / "results.json").read_text() == "{}"
    second = run_directory(root, "node", True, "20261206-020000")
    assert (root / "node").resolve() == second.resolve() and first.exists()


def test_a_framework_with_a_queue_of_its_own_dead_letters_to_the_queue_its_manifest_names():
    from steps.queues import dead_letter_queue
    from workqueue import QueueSpec
    by_id = {impl.id: impl for impl in manifest.load(manifest.BUILTIN)}
    spec = QueueSpec(dead_letter="task_queue.dead")
    assert dead_letter_queue(spec, by_id["dramatiq"]) == "task_queue.XQ"
    assert dead_letter_queue(spec, by_id["go-amqp091"]) == "task_queue.dead"
    assert dead_letter_queue(spec, None) == "task_queue.dead"
    assert dead_letter_queue(QueueSpec(), by_id["dramatiq"]) is None
