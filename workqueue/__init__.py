"""workqueue: RabbitMQ's Work Queues tutorial as a small, sturdy package.

The library (Producer, Worker, QueueSpec) does the work and never prints; the command-line
modules (``python -m workqueue.new_task``, ``workqueue.worker``, ``workqueue.status``) parse
arguments, print the tutorial's lines and map errors to documented exit codes.
"""

from workqueue.consumer import Delivery, Worker
from workqueue.errors import (
    AccessRefused,
    BadTask,
    BadUrl,
    BrokerUnreachable,
    ProducerBlocked,
    QueueFull,
    QueueRefused,
    TaskNotConfirmed,
    WorkqueueError,
)
from workqueue.producer import Producer
from workqueue.spec import QueueSpec
from workqueue.urls import parameters_from_url, redact

__all__ = [
    "AccessRefused",
    "BadTask",
    "BadUrl",
    "BrokerUnreachable",
    "Delivery",
    "Producer",
    "ProducerBlocked",
    "QueueFull",
    "QueueRefused",
    "QueueSpec",
    "TaskNotConfirmed",
    "Worker",
    "WorkqueueError",
    "parameters_from_url",
    "redact",
]
