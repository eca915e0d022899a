"""Show or change queues: ``python -m workqueue.status [list | purge QUEUE | delete QUEUE]``

``list`` (the default) prints, per queue, messages ready, messages unacknowledged and
consumers: the numbers of ``rabbitmqctl list_queues name messages_ready
messages_unacknowledged consumers``, read from the management HTTP API. A number the API has
not reported yet (just after a declaration or a restart) is shown as ``?``: unknown, not 0.
"""

import os
import sys

from workqueue import cli
from workqueue.management import Management
from workqueue.urls import parameters_from_url

UNKNOWN = "?"


def format_table(rows):
    """The table the command prints; a number the broker has not reported yet shows as ``?``."""
    def cell(value):
        return UNKNOWN if value is None else str(value)
    header = ("queue", "ready", "unacked", "consumers")
    lines = [header] + [(r["name"], cell(r["messages_ready"]), cell(r["messages_unacknowledged"]),
                         cell(r["consumers"])) for r in rows]
    width = max(len(line[0]) for line in lines)
    return "\n".join(f"{a:<{width}}  {b:>7}  {c:>7}  {d:>9}" for a, b, c, d in lines)


def main(argv=None):
    p = cli.parser("python -m workqueue.status", __doc__.split("\n\n")[0])
    p.add_argument("command", nargs="?", choices=("list", "purge", "delete"), default="list")
    p.add_argument("queue", nargs="?", help="the queue to purge or delete")
    p.add_argument("--management-url", default=os.environ.get("WORKQUEUE_MANAGEMENT_URL"),
                   help="management API base URL (env WORKQUEUE_MANAGEMENT_URL; "
                        "default: http://<broker host>:15672)")
    cli.add_broker_options(p)
    args = p.parse_args(argv)
    secrets = cli.secrets_from(args)
    cli.configure_logging(args.verbose, secrets)
    if args.command != "list" and not args.queue:
        p.error(f"{args.command} needs a QUEUE")
    with cli.reporting(p.prog, secrets):
        url = cli.urls_from(args)[0]
        params = parameters_from_url(url)               # validates the URL
        vhost = params.virtual_host
        api = Management.for_amqp_url(url, args.management_url)
        if args.command == "list":
            print(format_table(api.queues(vhost)), flush=True)
        elif args.command == "purge":
            api.purge(vhost, args.queue)
            print(f" [x] Purged {args.queue!r}", flush=True)
        else:
            api.delete_queue(vhost, args.queue)
            print(f" [x] Deleted {args.queue!r}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
