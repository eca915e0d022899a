"""What the command-line tools share: broker and queue options, logging, error reporting."""

import argparse
import contextlib
import logging
import os
import sys

from workqueue.connection import DEFAULT_URL, parameters_from_url
from workqueue.errors import EXIT_CODES, WorkqueueError
from workqueue.queue import QueueSpec


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


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
    p.add_argument("--queue-type", choices=("classic", "quorum"), default="classic",
                   help="queue type; quorum queues are always durable")
    p.add_argument("--delivery-limit", type=int, default=None, metavar="N",
                   help="times a failing task is tried before it is rejected (quorum: also x-delivery-limit)")
    p.add_argument("--dead-letter", default=None, metavar="QUEUE",
                   help="queue that rejected tasks go to (declared too)")


def queue_from(args):
    try:
        return QueueSpec(name=args.queue, durable=not args.transient, queue_type=args.queue_type,
                         delivery_limit=args.delivery_limit, dead_letter=args.dead_letter)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None


def urls_from(args):
    """The broker URLs: every --url, else WORKQUEUE_URL's, else the tutorial's."""
    if args.url:
        return args.url
    return os.environ.get("WORKQUEUE_URL", DEFAULT_URL).replace(",", " ").split() or [DEFAULT_URL]


def params_from(args):
    """pika parameters for the broker URL, or a list of them when several were given."""
    params = [parameters_from_url(url, heartbeat=args.heartbeat) for url in urls_from(args)]
    return params[0] if len(params) == 1 else params


def configure_logging(verbose):
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    if verbose < 2:
        logging.getLogger("pika").setLevel(logging.CRITICAL)


@contextlib.contextmanager
def reporting(prog):
    """Turn WorkqueueErrors into one line on stderr and their exit code, with no traceback."""
    try:
        yield
    except WorkqueueError as exc:
        message = " ".join(str(exc).split())          # one line, whatever the broker said
        print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from None
