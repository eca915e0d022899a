"""Run a worker: ``python -m workqueue.worker``

Prints `` [*] Waiting for messages. To exit press CTRL+C``, then for each task
`` [x] Received 'First message.'``, sleeps one second per dot, and `` [x] Done``.
Ctrl+C or SIGTERM: stop taking tasks, finish and ack the current one, exit 0.
A second Ctrl+C: exit at once (130); the unacknowledged task goes back to the queue.
"""

import importlib
import json
import os
import signal
import sys
import time

from workqueue import cli
from workqueue.consumer import Worker


def connection_name(name=None):
    """What a worker names its connection (the management UI and API show it)."""
    return f"workqueue worker {name}" if name else "workqueue worker"


def announced(say, work, report):
    """A handler printing the tutorial's lines around ``work(delivery)``; ``report(event, **fields)``
    records the same (as JSON lines, with --events)."""
    def handle(delivery):
        suffix = " (redelivered)" if delivery.redelivered else ""
        # A body that is not UTF-8 text goes as its Python repr (body_repr: b'...').
        body = {"body": delivery.text} if delivery.text is not None else {"body_repr": delivery.display()}
        say(f" [x] Received {delivery.display()}{suffix}")
        report("received", **body, redelivered=delivery.redelivered)
        work(delivery)
        say(" [x] Done")
        report("done", **body)
    return handle


def unreported(event, **fields):
    """``report`` without --events: the events are printed only."""


def events_file(path):
    """``report(event, **fields)`` appending one JSON object per line to ``path`` (the worker
    contract's events file, docs/conformance.md), each line written whole."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def report(event, **fields):
        os.write(fd, (json.dumps({"event": event, **fields}) + "\n").encode())
    return report


def tutorial_work(seconds_per_dot, max_seconds):
    """The tutorial's task: one second of work per dot in the body."""
    def work(delivery):
        seconds = (delivery.text or "").count(".") * seconds_per_dot
        if max_seconds is not None:
            seconds = min(seconds, max_seconds)
        time.sleep(seconds)                 # the simulated work itself
    return work


def load_work(spec):
    """``module:function``; the function takes the Delivery and may raise to fail the task."""
    module_name, _, func_name = spec.partition(":")
    return getattr(importlib.import_module(module_name), func_name or "handle")


def main(argv=None):
    p = cli.parser("python -m workqueue.worker", __doc__.split("\n\n")[0])
    p.add_argument("--name", default=None, help="tag every printed line with this name, and name the "
                   "connection 'workqueue worker NAME' (the management UI shows it)")
    p.add_argument("--prefetch", type=int, default=1,
                   help="unacknowledged tasks this worker may hold (1 = fair dispatch, 0 = unlimited)")
    p.add_argument("--consumer-timeout", type=int, default=None, metavar="SECONDS",
                   help="ask the broker for this consumer timeout for this worker's tasks (the consumer "
                        "argument x-consumer-timeout: RabbitMQ 4.3, quorum queues; earlier versions ignore it)")
    p.add_argument("--auto-ack", action="store_true",
                   help="let the broker forget a task as soon as it is sent (a killed worker loses it)")
    p.add_argument("--seconds-per-dot", type=float, default=1.0, help="seconds of work per dot")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="cap on the simulated work of one task, in seconds")
    p.add_argument("--handler", default=None, metavar="MODULE:FUNCTION",
                   help="call this function with each task instead of the tutorial's dot-sleeper")
    p.add_argument("--no-reconnect", action="store_true",
                   help="exit (3) when the connection is lost instead of reconnecting")
    p.add_argument("--events", default=None, metavar="FILE",
                   help="also append each event (consuming, received, done) to FILE, one JSON object a line "
                        "(the worker contract of docs/conformance.md)")
    cli.add_broker_options(p)
    cli.add_queue_options(p)
    args = p.parse_args(argv)
    secrets = cli.secrets_from(args)
    cli.configure_logging(args.verbose, secrets)
    prefix = f"{args.name} |" if args.name else ""

    def say(line):
        print(prefix + line, flush=True)

    work = load_work(args.handler) if args.handler else tutorial_work(args.seconds_per_dot, args.max_seconds)
    try:
        report = events_file(args.events) if args.events else unreported
    except OSError as exc:
        p.error(f"--events: cannot open {args.events}: {exc.strerror}")
    handler = announced(say, work, report)

    def consuming():
        say(" [*] Waiting for messages. To exit press CTRL+C")
        report("consuming")
    with cli.reporting(p.prog, secrets):
        params = cli.params_from(args, connection_name=connection_name(args.name))
        workers = []                            # one, or a second one for an existing queue's type

        def run(queue):
            if workers and workers[-1].stopping:
                return                          # stopped while the first declaration was refused
            workers.append(Worker(params, queue, handler, prefetch=args.prefetch, auto_ack=args.auto_ack,
                                  reconnect=not args.no_reconnect, consumer_timeout=args.consumer_timeout,
                                  on_consuming=consuming))
            workers[-1].run()

        def graceful(signum, frame):
            if not workers:
                raise KeyboardInterrupt
            worker = workers[-1]
            if worker.stopping:                 # second Ctrl+C: abort at once
                say(" [!] Aborted; unacknowledged tasks return to the queue")
                os._exit(130)
            # Stop first, then say so: a second signal that lands while the line is printed
            # runs this handler again, nested, and must find the worker stopping.
            worker.stop()
            say(" [*] Stopping: finishing the current task")

        signal.signal(signal.SIGINT, graceful)
        signal.signal(signal.SIGTERM, graceful)
        cli.adopting(args, run)
        say(" [*] Stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
