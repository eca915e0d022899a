"""What a task queue is: name, durability, type, delivery limit and dead-letter queue."""

from dataclasses import dataclass

QUEUE_TYPES = ("classic", "quorum")
#: What a queue at its length limit does with one more task (x-overflow): drop its oldest (the
#: broker's default), or refuse the new one (nack it; -dlx: also dead-letter it).
OVERFLOWS = ("drop-head", "reject-publish", "reject-publish-dlx")
#: The overflows under which a nack means "the queue is full".
REFUSING = ("reject-publish", "reject-publish-dlx")


@dataclass(frozen=True)
class QueueSpec:
    """A task queue as the producer and the worker declare it.

    ``durable`` and ``queue_type`` are the tutorial's concerns: a durable queue survives a broker
    restart; quorum queues are always durable. ``delivery_limit`` bounds how often a failing task
    is retried; ``dead_letter`` names the queue a rejected task goes to. ``max_length`` bounds the
    ready tasks it holds (x-max-length) and ``overflow`` says what happens to one more (x-overflow:
    the oldest is dropped by default, dead-lettered when there is a dead-letter queue).
    ``consumer_timeout`` is the queue's own consumer timeout in seconds (x-consumer-timeout:
    RabbitMQ 4.0 reads it for any queue, 4.3 for quorum queues and refuses it for classic ones,
    3.10 ignores it).
    """

    name: str = "task_queue"
    durable: bool = True
    queue_type: str = "classic"
    delivery_limit: int | None = None
    dead_letter: str | None = None
    max_length: int | None = None
    overflow: str | None = None
    consumer_timeout: int | None = None

    def __post_init__(self):
        if self.queue_type not in QUEUE_TYPES:
            raise ValueError(f"queue type must be one of {', '.join(QUEUE_TYPES)}, not {self.queue_type!r}")
        if self.queue_type == "quorum" and not self.durable:
            raise ValueError("a quorum queue is always durable")
        if self.overflow is not None and self.overflow not in OVERFLOWS:
            raise ValueError(f"overflow must be one of {', '.join(OVERFLOWS)}, not {self.overflow!r}")
        if self.max_length is not None and self.max_length < 0:
            raise ValueError(f"a queue's length limit cannot be negative ({self.max_length})")
        if self.consumer_timeout is not None and self.consumer_timeout < 0:
            raise ValueError(f"a consumer timeout cannot be negative ({self.consumer_timeout})")

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
        if self.max_length is not None:
            args["x-max-length"] = self.max_length
        if self.overflow is not None:
            args["x-overflow"] = self.overflow
        if self.consumer_timeout is not None:
            args["x-consumer-timeout"] = self.consumer_timeout * 1000
        return args

    @property
    def refuses_when_full(self):
        """A nack from this queue means it is full (its overflow refuses new tasks)."""
        return self.max_length is not None and self.overflow in REFUSING

    def declarations(self):
        """(name, durable, arguments) to declare, in order: the dead-letter queue first."""
        if self.dead_letter:
            dead_args = {"x-queue-type": self.queue_type} if self.queue_type != "classic" else {}
            yield self.dead_letter, self.durable, dead_args
        yield self.name, self.durable, self.arguments
