"""Step definitions, one module per domain concept (broker, queues, tasks, workers).

Shared here: the scenario's sizes of work and small parsing helpers.
"""

import re

import pytest

#: On a test item: a strict expected failure armed for it ({"reason", "step", "error"}): a known
#: RabbitMQ defect (features/defects.toml) or an implementation's (conformance manifests). The
#: test passes as expected failure only when it fails in that step with an error matching that.
EXPECTED_FAILURE = pytest.StashKey[dict]()

#: On a test item: the pytest-bdd scenario it runs (its steps, for a step that must know what
#: follows it: steps/workers.py, the long task).
SCENARIO = pytest.StashKey[object]()

#: On a test item: the scenario's WorkerPool (steps/workers.py), for the settings its workers
#: were started with (the conformance suite records them per cell).
WORKER_POOL = pytest.StashKey[object]()

#: Seconds of simulated work per dot for the workers of every scenario.
SECONDS_PER_DOT = 0.2
#: A task long enough to be killed, frozen, interrupted twice or observed in the middle of
#: (40 dots: 8 s; 4 s was too short with the suite running in parallel: a worker interrupted
#: once could finish it before the second Ctrl+C arrived).
LONG_TASK = "long task" + "." * 40
#: A task that outlasts the scenario (5 min), for observing a worker that stays busy: the
#: management API's statistics lag the broker by seconds, so what they show must hold still.
ENDLESS_TASK = "endless task" + "." * 1500
#: Fair dispatch: a heavy task is 30x a light one.
HEAVY_TASK = "heavy task" + "." * 30
LIGHT_TASK = "light task {n}."
#: Deadline for anything a scenario waits on (generous: these machines are noisy).
DEADLINE = 60


def quoted(text):
    """All "double-quoted" strings in a step's text, in order."""
    return re.findall(r'"([^"]*)"', text)
