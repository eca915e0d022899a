"""Publish a task: ``python -m workqueue.new_task First message.``

The arguments joined by spaces are the task (``Hello World!`` when there are none); each dot is
one second of work for the tutorial's worker. Prints `` [x] Sent 'First message.'`` once the
broker has confirmed the task.
"""

import sys

from workqueue import cli
from workqueue.errors import BadTask
from workqueue.producer import Producer


def read_task(args, stdin=None):
    """The task body (bytes) from the arguments or stdin, checked against the limits."""
    if args.stdin:
        body = (stdin or sys.stdin.buffer).read()
    else:
        text = " ".join(args.message) if args.message else "Hello World!"
        body = text.encode("utf-8", "surrogateescape")   # argv bytes as given
    return check_task(body, args.max_bytes, args.max_dots)


def check_task(body, max_bytes, max_dots):
    if not body.strip():
        raise BadTask("empty task: give the task text as arguments")
    if len(body) > max_bytes:
        raise BadTask(f"task is {len(body)} bytes, over the limit of {max_bytes} (--max-bytes)")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadTask(f"task is not UTF-8 text (byte {exc.start}: {body[exc.start:exc.start + 1]!r})") from None
    dots = text.count(".")
    if max_dots and dots > max_dots:
        raise BadTask(f"task has {dots} dots (seconds of work), over the limit of {max_dots} (--max-dots)")
    return body


def main(argv=None):
    p = cli.parser("python -m workqueue.new_task", __doc__.split("\n\n")[0])
    p.add_argument("message", nargs="*", help="the task text (default: Hello World!)")
    p.add_argument("--stdin", action="store_true", help="read the task body from standard input")
    p.add_argument("--transient-message", action="store_true",
                   help="publish a transient message (default: persistent, survives a restart)")
    p.add_argument("--no-declare", action="store_true",
                   help="do not declare the queue; a missing queue is reported as unroutable")
    p.add_argument("--max-bytes", type=int, default=1024 * 1024, help="largest task accepted, in bytes")
    p.add_argument("--max-dots", type=int, default=3600,
                   help="most dots (seconds of work) a task may have; 0 = no limit")
    p.add_argument("--blocked-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="how long to wait while the broker blocks publishing (a memory or disk "
                        "alarm) before giving up with exit code 8 (default: 60)")
    cli.add_broker_options(p)
    cli.add_queue_options(p)
    args = p.parse_args(argv)
    secrets = cli.secrets_from(args)
    cli.configure_logging(args.verbose, secrets)
    with cli.reporting(p.prog, secrets):
        body = read_task(args)
        params = cli.params_from(args, connection_name="workqueue new_task")

        def send(queue):
            with Producer(params, queue, persistent=not args.transient_message,
                          declare=not args.no_declare, blocked_timeout=args.blocked_timeout) as producer:
                producer.publish(body)
        cli.adopting(args, send)
        print(f" [x] Sent {body.decode('utf-8')!r}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
