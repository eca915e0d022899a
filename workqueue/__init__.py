"""workqueue: RabbitMQ's Work Queues tutorial as a small, sturdy package.

The library (Producer, Worker, QueueSpec) does the work and never prints; the command-line
modules (``python -m workqueue.new_task``, ``workqueue.worker``, ``workqueue.status``) parse
arguments, print the tutorial's lines and map errors to documented exit codes.
"""

from workqueue.errors import (
    AccessRefused,
    BrokerUnreachable,
    BadTask,
    BadUrl,
    QueueRefused,
    TaskNotConfirmed,
    WorkqueueError,
)
from workqueue.queue import QueueSpec
from workqueue.connection import parameters_from_url, redact
from workqueue.producer import Producer
from workqueue.consumer import Delivery, Worker

__all__ = [
    "AccessRefused",
    "BadTask",
    "BadUrl",
    "BrokerUnreachable",
    "Delivery",
    "Producer",
    "QueueRefused",
    "QueueSpec",
    "TaskNotConfirmed",
    "Worker",
    "WorkqueueError",
    "parameters_from_url",
    "redact",
]
