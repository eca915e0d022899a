"""Declaring a QueueSpec on a channel: the one declare chain of the Producer and the Worker."""

from __future__ import annotations

from collections.abc import Callable

from workqueue.spec import QueueSpec


def declare_queue(channel, spec: QueueSpec, on_declared: Callable[[], object]) -> None:
    """Declare each queue ``spec`` needs, in turn (its dead-letter queue before it), on
    ``channel`` (pika's asynchronous Channel), then call ``on_declared()``. A refusal closes the
    channel: its close callback reports it (``broker_errors.queue_refused``)."""
    pending = list(spec.declarations())

    def next_one(_frame=None):
        if not pending:
            on_declared()
            return
        name, durable, arguments = pending.pop(0)
        channel.queue_declare(name, durable=durable, arguments=arguments, callback=next_one)

    next_one()
