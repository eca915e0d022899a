"""The broker: restarts, crashes, and brokers configured for one scenario."""

import contextlib
import dataclasses
import re
import socket
import threading
import time

import pytest
from pytest_bdd import given, parsers, then, when

from steps import DEADLINE
from workqueue.testing import QUEUE_SETTLE_SECONDS, make_broker, wait_until
from workqueue.testing.nemesis import Nemesis


class Declared:
    """When the scenario's queues were first declared (time.monotonic()), once a step has seen a
    declaration answered: a producer connected, a worker consuming."""

    def __init__(self):
        self.at = None

    def mark(self):
        if self.at is None:
            self.at = time.monotonic()

    def wait_settled(self):
        """Wait until the queues are QUEUE_SETTLE_SECONDS old (at once when none was declared)."""
        if self.at is not None:
            threading.Event().wait(max(0.0, self.at + QUEUE_SETTLE_SECONDS - time.monotonic()))


@pytest.fixture
def declared():
    return Declared()


@pytest.fixture
def nemesis(request):
    """``nemesis(target)``: the scenario's nemesis of a broker or a cluster (its faults observed
    as they strike: workqueue.testing.nemesis); each observation goes into the test's report
    (junit XML properties, named "fault")."""
    made = {}

    def of(target):
        return made.setdefault(id(target), Nemesis(target))
    yield of
    for each in made.values():
        request.node.user_properties.extend(("fault", str(o)) for o in each.observations)


@pytest.fixture
def extra_brokers():
    """Brokers started for one scenario only; closed at its end."""
    brokers = []
    yield brokers
    for b in brokers:
        b.close()


@when(parsers.re(r"the broker (?P<event>restarts|crashes and recovers|crashes at once and recovers)$"))
def _(broker, declared, nemesis, event):
    """A crash waits until the scenario's queues are a few seconds old (QUEUE_SETTLE_SECONDS,
    from their first declaration), unless it is the defect's own scenario, which crashes at once.
    Either is observed as it strikes: a restart's stop was graceful, a crash a SIGKILL."""
    if event == "restarts":
        nemesis(broker).stop(broker)
    else:
        if event == "crashes and recovers":
            declared.wait_settled()
        nemesis(broker).crash(broker)
    nemesis(broker).recover(broker)


@dataclasses.dataclass
class Outage:
    """The broker's port while it was down: from when to when (time.monotonic()), and when
    each connection attempt came."""
    start: float
    end: float
    attempts: list


@when(parsers.parse("the broker is down for {seconds:d} seconds"), target_fixture="outage")
def _(broker, nemesis, seconds):
    """Stopped (gracefully, observed), and for ``seconds`` (the fault's length, not a
    synchronisation) its address is held by a listener of the step's own, which notes each
    connection attempt and closes it at once, as a port that is not yet AMQP does; then the
    broker starts again on the same address and data."""
    nemesis(broker).stop(broker)
    attempts = []
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((broker.host, broker.port))
        listener.listen(16)
        listener.settimeout(0.2)
        start = time.monotonic()
        end = start + seconds
        while time.monotonic() < end:
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            attempts.append(time.monotonic())
            connection.close()
    nemesis(broker).recover(broker)
    return Outage(start, end, attempts)


@then(parsers.parse('"{name}" tried to connect at least once every {seconds:d} seconds while the broker was down'))
def _(workers, outage, name, seconds):
    """Every gap, from the outage's start to its first attempt, between two attempts, and from
    the last to its end, is at most ``seconds`` (the worker's back-off is capped at 1 s: an
    uncapped doubling waits 3.2 s, then 6.4 s, within the 15 s)."""
    marks = [outage.start, *outage.attempts, outage.end]
    gaps = [round(b - a, 1) for a, b in zip(marks, marks[1:])]
    assert outage.attempts, f"{name} never tried to connect while the broker was down"
    assert max(gaps) <= seconds, f"{name}'s attempts came {gaps} s apart"
    assert workers[name].process.poll() is None, workers[name].errors[-3:]


#: How often a channel of a broker with a short consumer timeout checks it (channel_tick_interval,
#: 60 000 ms by default: a timeout is acted on up to a minute late; measured on 3.10.8 and 4.0.5).
CONSUMER_TIMEOUT_TICK_MS = 500


#: The consumer timeout that scenarios tagged @broker_settings give their broker, in seconds.
SCENARIO_CONSUMER_TIMEOUT = 5


def _env_term(value):
    """An integer, or ``undefined``, as rabbitmqctl eval prints a setting (broker_settings)."""
    return None if value == "undefined" else int(value)


@contextlib.contextmanager
def broker_settings(broker):
    """The settings of a scenario tagged @broker_settings, on the broker of its test process: a
    consumer timeout of 5 s, checked every half second, set on the running broker as RabbitMQ's
    documentation shows (``rabbitmqctl eval 'application:set_env(rabbit, consumer_timeout,
    ...)'``, read by each channel as it opens on 3.10 and 4.0, by each consume on 4.3; the
    channel tick as each channel arms its timer), before the scenario's first step; the
    broker's own values are set back at its end. Each test process has a broker of its own and
    runs one scenario at a time, so the settings and the alarms the scenario raises reach no
    other scenario (a broker given with --broker=url is shared: skipped there, conftest.py).
    Until 2026-12-06 these scenarios booted a broker of their own in each test process."""
    out = broker.ctl("eval", "Old = [case application:get_env(rabbit, K) of {ok, V} -> V; undefined -> undefined end "
                             "|| K <- [consumer_timeout, channel_tick_interval]], "
                             f"ok = application:set_env(rabbit, consumer_timeout, {SCENARIO_CONSUMER_TIMEOUT * 1000}), "
                             f"ok = application:set_env(rabbit, channel_tick_interval, {CONSUMER_TIMEOUT_TICK_MS}), "
                             "Old.")
    found = re.search(r"\[(\w+),\s*(\w+)\]", out)
    assert found, f"rabbitmqctl eval answered {out.strip()!r}, not the broker's settings"
    before = dict(zip(("consumer_timeout", "channel_tick_interval"), map(_env_term, found.groups())))
    broker.consumer_timeout = SCENARIO_CONSUMER_TIMEOUT
    try:
        yield broker
    finally:
        del broker.consumer_timeout
        if broker.is_ready():       # a broker left down is started again (on its own settings)
            broker.ctl("eval", " ".join(
                f"ok = application:unset_env(rabbit, {key})," if value is None else
                f"ok = application:set_env(rabbit, {key}, {value}),"
                for key, value in before.items()) + " ok.")


@contextlib.contextmanager
def scenario_broker(request, broker):
    """The ``broker`` of a scenario: for a scenario tagged @broker_settings, with its settings
    (``broker_settings``) while it runs. A test module whose scenarios include such ones
    overrides its ``broker`` fixture with this."""
    if request.node.get_closest_marker("broker_settings") is None:
        yield broker
    else:
        with broker_settings(broker) as configured:
            yield configured


def with_settings(broker):
    assert getattr(broker, "consumer_timeout", None) == SCENARIO_CONSUMER_TIMEOUT, (
        "this step needs the scenario's broker settings: tag the feature @broker_settings")
    return broker


@given(parsers.re(r"a broker whose consumer timeout is (?P<seconds>\d+) seconds"))
def _(broker, seconds):
    assert with_settings(broker).consumer_timeout == int(seconds), broker.consumer_timeout


@pytest.fixture
def log_mark(broker):
    """Where the broker's log stood as the scenario began (``log_since`` reads from it)."""
    return broker.log_mark()


@pytest.fixture
def consumer_timeout_setting(broker):
    """set(term): the running broker's consumer_timeout, as RabbitMQ's documentation shows for a
    running node (rabbitmqctl eval ... set_env), read by each channel as it opens (3.10, 4.0) and
    by each consume (4.3); set back to the broker's own when the scenario ends."""
    changed = []

    def set_(term):
        with_settings(broker).ctl("eval", f"application:set_env(rabbit, consumer_timeout, {term}).")
        changed.append(term)
    yield set_
    if changed:
        broker.ctl("eval", f"application:set_env(rabbit, consumer_timeout, {SCENARIO_CONSUMER_TIMEOUT * 1000}).")


@given("the broker's consumer timeout is set to undefined")
def _(consumer_timeout_setting, log_mark):
    consumer_timeout_setting("undefined")


@then("the broker has logged no consumer timeout it put in force instead")
def _(broker, log_mark):
    """RabbitMQ 4.3.3 and later log a warning as a queue takes an undefined consumer_timeout
    for 24 hours (rabbit_queue_type:get_consumer_timeout/2); read after the task is done."""
    said = [line for line in broker.log_since(log_mark).splitlines() if "consumer_timeout" in line]
    assert not said, f"the broker logged: {said[-1].strip()}"


@given("a broker whose alarms reach no other scenario")
def _(broker):
    with_settings(broker)


def memory_alarm(broker):
    """Whether the broker's node has a memory alarm up (management API); None: not reported."""
    return next(iter(n.get("mem_alarm") for n in broker.management.request("GET", "/api/nodes")), None)


def memory_watermark(broker):
    """The broker's memory high watermark as ``rabbitmqctl set_vm_memory_high_watermark`` takes
    it: a fraction ("0.4") or ["absolute", bytes]."""
    out = broker.ctl("eval", "vm_memory_monitor:get_vm_memory_high_watermark().").strip()
    if re.fullmatch(r"\d+(\.\d+)?", out):
        return [out]
    found = re.fullmatch(r"\{absolute,\s*(\d+)\}", out)
    assert found, f"rabbitmqctl eval gave the memory high watermark as {out!r}"
    return ["absolute", found.group(1)]


@pytest.fixture
def alarm(broker):
    """Raise and clear the memory alarm of the (scenario's) broker: a high watermark of 0 sets
    it off at once (RabbitMQ's documented way to block all publishing); cleared by setting the
    broker's own watermark back (0.4 by default on 3.10, 0.6 on 4.x), also at the end."""
    class Alarm:
        raised = False
        watermark = None

        def raise_(self):
            self.watermark = self.watermark or memory_watermark(broker)
            broker.ctl("set_vm_memory_high_watermark", "0")
            self.raised = True
            wait_until(lambda: memory_alarm(broker) is True, DEADLINE, "the memory alarm to be up")

        def clear(self):
            broker.ctl("set_vm_memory_high_watermark", *self.watermark)
            self.raised = False
            wait_until(lambda: memory_alarm(broker) is False, DEADLINE, "the memory alarm to clear")
    a = Alarm()
    yield a
    if a.raised:
        a.clear()


@given(parsers.re(r"the broker raises a memory alarm(?:, with (?P<count>\d+) tasks waiting in the task queue)?$"),
       target_fixture="waiting_tasks")
def _(alarm, send, count):
    tasks = send([f"waiting {n}." for n in range(1, int(count or 0) + 1)]) if count else []
    alarm.raise_()
    return tasks


@when("the alarm clears")
def _(alarm):
    alarm.clear()


@given("a broker configured not to permit transient non-exclusive queues", target_fixture="amqp_url")
def _(broker, extra_brokers):
    # Debian's defaults, and the feature denied by this line alone (on a 4.3 package the harness
    # would otherwise add the same line to restore upstream's default)
    denying = make_broker(broker.kind, defaults="debian",
                          extra_conf="deprecated_features.permit.transient_nonexcl_queues = false\n")
    extra_brokers.append(denying)
    denying.start()
    return denying.url("/")


@then(parsers.parse('the broker lists the deprecated feature "{feature}" as {phase}'))
def _(broker, feature, phase):
    """As the management API lists it (GET /api/deprecated-features, RabbitMQ 4): its
    deprecation phase, "permitted by default" or "denied by default"."""
    listed = {row["name"]: row for row in broker.management.request("GET", "/api/deprecated-features")}
    assert feature in listed, f"the broker lists no deprecated feature {feature!r}: {sorted(listed)}"
    assert listed[feature]["deprecation_phase"] == phase.replace(" ", "_"), listed[feature]
