"""A node that fails to boot says why first: the error line of its log, not a tail of the info
lines RabbitMQ writes after it as it stops (CI, 2026-12-07: a mutant row reported only
"last log lines: ... Feature flags: list of ...")."""

from workqueue.testing.node import first_error

#: From a node whose management port was taken (3.10.8, 2026-12-07), shortened.
LOG = """\
2026-12-07 15:19:29.101+00:00 [info] <0.666.0> Feature flags: list of feature flags found:
2026-12-07 15:19:29.186343+00:00 [error] <0.746.0> Failed to start Ranch listener {acceptor,{0,0,0,0,0,0,0,0},25948} \
in ranch_tcp:listen(#{socket_opts => [{ip,{127,0,0,1}},{port,25948}]}) for reason eaddrinuse (address already in use)
2026-12-07 15:19:30.871717+00:00 [info] <0.666.0>     rabbit
""".splitlines()

CONSOLE = """\

BOOT FAILED
===========
Error during startup: {error,
    {could_not_start,rabbitmq_management,...}}
""".splitlines()


def test_the_logs_first_error_comes_first():
    said = first_error(LOG, CONSOLE)
    assert said.startswith("Failed to start Ranch listener {acceptor,") and "eaddrinuse" in said, said
    assert len(said) <= 400


def test_the_console_says_it_when_the_log_has_no_error():
    assert first_error(LOG[:1], CONSOLE) == "BOOT FAILED Error during startup: {error,"


def test_nothing_said_is_not_an_empty_reason():
    assert first_error([], LOG[:1]) == "no error logged"
