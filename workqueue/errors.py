"""Errors the library raises, each with the exit code its command-line tools use.

Messages are one line and never contain a password.
"""


class WorkqueueError(Exception):
    """Base class; ``exit_code`` is what a command-line tool exits with."""

    exit_code = 1


class BadTask(WorkqueueError):
    """The task itself is unacceptable (empty, not UTF-8 text, too large, too long)."""

    exit_code = 2


class BadUrl(WorkqueueError):
    """The broker URL cannot be parsed."""

    exit_code = 2


class BrokerUnreachable(WorkqueueError):
    """Nothing answered AMQP at the broker address, or the connection was lost."""

    exit_code = 3


class ConnectionLost(BrokerUnreachable):
    """An open connection was lost (not a broker that did not answer): the failover loop
    leaves it to its caller, which reconnects after a back-off, to another node first."""


class AccessRefused(WorkqueueError):
    """The broker refused the credentials or the virtual host (ACCESS_REFUSED)."""

    exit_code = 4


class QueueRefused(WorkqueueError):
    """The broker refused the queue declaration (406 PRECONDITION_FAILED, 541, 404...)."""

    exit_code = 5

    def __init__(self, message, reply_code=None, existing=None):
        super().__init__(message)
        self.reply_code = reply_code
        #: What the broker said of the queue as it exists ({'x-queue-type': 'quorum'} or
        #: {'durable': False}) when it refused an inequivalent declaration; else {}.
        self.existing = existing or {}


class TaskNotConfirmed(WorkqueueError):
    """A task was returned as unroutable, nacked, or its channel closed before the confirm."""

    exit_code = 6


class QueueFull(TaskNotConfirmed):
    """The queue is at its length limit (x-max-length) and refuses new tasks (x-overflow
    reject-publish): the broker nacked the task. What the queue held is kept."""

    exit_code = 7


class ProducerBlocked(TaskNotConfirmed):
    """The broker blocked publishing (connection.blocked: a memory or disk alarm) for longer than
    the producer's ``blocked_timeout``. Tasks confirmed before are in the queue; the others were
    not confirmed (one may still reach the queue once the alarm clears)."""

    exit_code = 8


EXIT_CODES = """\
exit codes:
  0    success
  1    unexpected error
  2    bad usage or bad input: malformed URL, empty, non-UTF-8, too large or too long task
  3    broker unreachable (nothing listening, connection lost, broker shutting down)
  4    access refused (wrong user name or password, or no access to the virtual host)
  5    queue refused by the broker (e.g. 406 PRECONDITION_FAILED: inequivalent arguments)
  6    task not confirmed (unroutable, nacked, or channel closed before the confirm)
  7    queue full: at its length limit it refuses new tasks (x-overflow reject-publish); what it holds is kept
  8    blocked: the broker blocked publishing (a memory or disk alarm) for longer than --blocked-timeout
  130  interrupted (second Ctrl+C)"""
