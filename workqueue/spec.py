"""What a task queue is: name, durability, type, delivery limit and dead-letter queue."""

from dataclasses import dataclass

QUEUE_TYPES = ("classic", "quorum")


@dataclass(frozen=True)
class QueueSpec:
    """A task queue as the producer and the worker declare it.

    ``durable`` and ``queue_type`` are the tutorial's concerns: a durable queue survives a broker
    restart; quorum queues are always durable. ``delivery_limit`` bounds how often a failing task
    is retried; ``dead_letter`` names the queue a rejected task goes to.
    """

    name: str = "task_queue"
    durable: bool = True
    queue_type: str = "classic"
    delivery_limit: int | None = None
    dead_letter: str | None = None

    def __post_init__(self):
        if self.queue_type not in QUEUE_TYPES:
            raise ValueError(f"queue type must be one of {', '.join(QUEUE_TYPES)}, not {self.queue_type!r}")
        if self.queue_type == "quorum" and not self.durable:
            raise ValueError("a quorum queue is always durable")

    @property
    def arguments(self):
        """The x-arguments of the declaration."""
        args: dict[str, object] = {}
        if self.queue_type != "classic":
            args["x-queue-type"] = self.queue_type
        if self.delivery_limit is not None and self.queue_type == "quorum":
            args["x-delivery-limit"] = self.delivery_limit
        if self.dead_letter:
            args["x-dead-letter-exchange"] = ""
            args["x-dead-letter-routing-key"] = self.dead_letter
        return args

    def declarations(self):
        """(name, durable, arguments) to declare, in order: the dead-letter queue first."""
        if self.dead_letter:
            dead_args = {"x-queue-type": self.queue_type} if self.queue_type != "classic" else {}
            yield self.dead_letter, self.durable, dead_args
        yield self.name, self.durable, self.arguments
