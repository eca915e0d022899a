"""What the command-line tools share: broker and queue options, logging, error reporting."""

import argparse
import contextlib
import logging
import os
import sys

from workqueue.errors import EXIT_CODES, QueueRefused, WorkqueueError
from workqueue.spec import OVERFLOWS, QueueSpec
from workqueue.urls import DEFAULT_URL, parameters_from_url, scrub, secrets_of


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default shown once: added where the help does not state it already and
    there is one worth showing."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, [], argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def parser(prog, description):
    """An ArgumentParser whose --help ends with the exit codes."""
    return argparse.ArgumentParser(prog=prog, description=description, epilog=EXIT_CODES,
                                   formatter_class=_Formatter)


def add_broker_options(p):
    p.add_argument("--url", action="append", default=None, metavar="URL",
                   help="broker AMQP URL, e.g. amqp://user:pass@host:5672/vhost; give it once per "
                        "node of a cluster to fail over between them (env WORKQUEUE_URL, several "
                        "separated by spaces or commas; default: the tutorial's local guest broker)")
    p.add_argument("--heartbeat", type=int, default=None, metavar="SECONDS",
                   help="AMQP heartbeat to negotiate (default: the broker's, 60 s)")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log more (-v info, -vv debug) on stderr")


def add_queue_options(p):
    p.add_argument("--queue", default="task_queue", help="queue name")
    p.add_argument("--transient", action="store_true",
                   help="declare a non-durable queue (lost on broker restart), like the tutorial's 'hello'")
    p.add_argument("--queue-type", choices=("classic", "quorum"), default=None,
                   help="queue type; quorum queues are always durable (default: the type of the queue "
                        "as it exists; a new queue is a quorum queue, as today's tutorial declares "
                        "task_queue, or classic with --transient)")
    p.add_argument("--delivery-limit", type=int, default=None, metavar="N",
                   help="times a failing task is tried before it is rejected (quorum: also x-delivery-limit)")
    p.add_argument("--dead-letter", default=None, metavar="QUEUE",
                   help="queue that rejected tasks go to (declared too)")
    p.add_argument("--max-length", type=int, default=None, metavar="N",
                   help="most ready tasks the queue holds (x-max-length; default: no limit)")
    p.add_argument("--overflow", choices=OVERFLOWS, default=None,
                   help="what a full queue does with one more task: drop-head drops the oldest (the "
                        "broker's default), reject-publish refuses the new one (new_task exits 7)")
    p.add_argument("--queue-consumer-timeout", type=int, default=None, metavar="SECONDS",
                   help="the queue's own consumer timeout (x-consumer-timeout; RabbitMQ 4.0 and later; "
                        "4.3 takes it for quorum queues only; default: the broker's consumer_timeout)")


def queue_type_from(args):
    """The type a new queue gets: --queue-type's, else quorum (as today's tutorial declares
    task_queue), classic when --transient (a quorum queue is always durable)."""
    return args.queue_type or ("classic" if args.transient else "quorum")


def queue_from(args, queue_type=None):
    try:
        return QueueSpec(name=args.queue, durable=not args.transient, queue_type=queue_type or queue_type_from(args),
                         delivery_limit=args.delivery_limit, dead_letter=args.dead_letter,
                         max_length=args.max_length, overflow=args.overflow,
                         consumer_timeout=args.queue_consumer_timeout)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None


def urls_from(args):
    """The broker URLs: every --url, else WORKQUEUE_URL's, else the tutorial's."""
    if args.url:
        return args.url
    return os.environ.get("WORKQUEUE_URL", DEFAULT_URL).replace(",", " ").split() or [DEFAULT_URL]


def params_from(args, connection_name=None):
    """pika parameters for the broker URL, or a list of them when several were given; the
    connection carries ``connection_name`` (shown by the management UI and API)."""
    extra = {"client_properties": {"connection_name": connection_name}} if connection_name else {}
    params = [parameters_from_url(url, heartbeat=args.heartbeat, **extra) for url in urls_from(args)]
    return params[0] if len(params) == 1 else params


def secrets_from(args):
    """Every password in the broker URLs (and management URL) the tool was given."""
    urls = list(urls_from(args)) + [getattr(args, "management_url", None) or ""]
    return set().union(*(secrets_of(url) for url in urls))


class _Scrubbing(logging.Filter):
    """Hides the given secrets in every log record (a last line of defence behind redact())."""

    def __init__(self, secrets):
        super().__init__()
        self.secrets = secrets

    def filter(self, record):
        if self.secrets:
            record.msg, record.args = scrub(record.getMessage(), self.secrets), None
        return True


def configure_logging(verbose, secrets=()):
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_Scrubbing(set(secrets)))
    if verbose < 2:
        logging.getLogger("pika").setLevel(logging.CRITICAL)


def adopting(args, run):
    """``run(spec)`` with the queue the options describe. Without --queue-type, a queue that
    exists with the other type is taken as it is: the broker refuses the declaration (406
    inequivalent arg 'x-queue-type', which names the existing type, before anything is sent or
    consumed), and ``run`` is called once more with that type. So new_task and the worker work
    with a task_queue made by the tutorial's scripts of today (quorum) or of before 2026
    (classic), whichever side declares it first. An explicit --queue-type is declared as given."""
    spec = queue_from(args)
    try:
        return run(spec)
    except QueueRefused as exc:
        existing = exc.existing.get("x-queue-type")
        if args.queue_type is not None or existing in (None, spec.queue_type):
            raise
        logging.getLogger("workqueue.cli").info("queue %r exists as a %s queue: using it as it is",
                                                spec.name, existing)
        return run(queue_from(args, existing))


def hint(exc):
    """For a refused declaration: the option that matches the queue as it exists."""
    existing = exc.existing if isinstance(exc, QueueRefused) else {}
    if "x-queue-type" in existing:
        kind = existing["x-queue-type"]
        return f" (the existing queue is a {kind} queue: use --queue-type {kind})"
    if existing.get("durable") is False:
        return " (the existing queue is not durable: use --transient)"
    if existing.get("durable") is True:
        return " (the existing queue is durable: leave out --transient)"
    return ""


@contextlib.contextmanager
def reporting(prog, secrets=()):
    """Turn WorkqueueErrors into one line on stderr and their exit code, with no traceback;
    ``secrets`` (the passwords of the URLs given) never appear in that line."""
    try:
        yield
    except WorkqueueError as exc:
        message = scrub(" ".join(str(exc).split()) + hint(exc), secrets)   # one line, whatever the broker said
        print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from None
