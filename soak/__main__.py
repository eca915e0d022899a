"""``python -m soak`` (``make soak``): the chaos soak's command line."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import random
import sys

import soak
from soak.config import Config


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m soak", description=soak.__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                epilog="exit codes: 0 PASS; 1 FAIL (the checker's verdict, or a run that could "
                                       "not come to one); 2 bad usage, a fault the backend cannot make, or "
                                       "a missing extra (test, plot); 3 the broker could not be "
                                       "started or did not answer; 130 interrupted (Ctrl+C, SIGTERM)")
    d = Config()
    p.add_argument("-n", type=int, default=d.n, help="tasks to publish, each uniquely numbered")
    p.add_argument("--workers", type=int, default=d.workers, help="worker processes running at any time")
    p.add_argument("--prefetch", type=int, default=d.prefetch, help="each worker's prefetch")
    p.add_argument("--window", type=int, default=d.window, help="the producer's confirm window")
    p.add_argument("--backlog", type=int, default=d.backlog,
                   help="most tasks confirmed but not yet processed (paces the producer, so that faults "
                        "hit it too)")
    p.add_argument("--queue-type", choices=("quorum", "classic"), default=d.queue_type,
                   help="the task queue's type (a cluster needs quorum to survive a node)")
    p.add_argument("--kills", type=int, default=d.kills, help="worker SIGKILLs")
    p.add_argument("--crashes", type=int, default=d.crashes, help="broker crashes (on --cluster: node crashes)")
    p.add_argument("--restarts", type=int, default=d.restarts, help="graceful broker (node) restarts")
    p.add_argument("--pauses", type=int, default=d.pauses,
                   help="broker (node) pauses: SIGSTOP / docker pause of the broker, or of the quorum "
                        "queue's leader node, for --fault-seconds")
    p.add_argument("--partitions", type=int, default=d.partitions,
                   help="network partitions (--cluster; on the node backend as root): the leader node's "
                        "link dropped, cut off from the other nodes and the clients for --fault-seconds")
    p.add_argument("--fault-seconds", type=float, default=d.fault_seconds,
                   help="how long a pause or a partition lasts (long enough for a new leader)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="draw the run: tasks confirmed and done per second, latency, fault windows "
                        "(needs the plot extra: matplotlib)")
    p.add_argument("--progress", choices=("auto", "plain", "none"), default=d.progress,
                   help="progress on stderr: auto (one line updated in place on a terminal, else a "
                        "line every 30 s), plain, none")
    p.add_argument("--work-ms", type=float, default=d.work_ms, help="simulated work per task, in milliseconds")
    p.add_argument("--cluster", action="store_true", help="a 3-node cluster with a quorum queue")
    p.add_argument("--broker", default=None, choices=("auto", "node", "container"))
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    p.add_argument("--max-seconds", type=float, default=d.max_seconds,
                   help="the run stops after this, finished or not")
    p.add_argument("--stall-seconds", type=float, default=d.stall_seconds,
                   help="the run fails when no task is processed or confirmed for this long")
    p.add_argument("-v", "--verbose", action="store_true", help="log each fault as it happens")
    return p


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(1_000_000)
    config = Config(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Config)})
    for problem in config.problems():
        p.error(problem)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print(f"{p.prog}: error: --plot needs matplotlib: pip install 'workqueue[plot]'", file=sys.stderr)
            return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    from workqueue.errors import WorkqueueError
    from workqueue.testing import BrokerError, MissingExtra
    from workqueue.testing.processes import stopped_by_signals
    try:
        from soak.report import plot, table
        from soak.run import Unsupported, run
        with stopped_by_signals("soak"):
            result = run(config)
    except MissingExtra as exc:
        print(f"{p.prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Unsupported as exc:
        print(f"{p.prog}: error: {exc}", file=sys.stderr)
        return 2
    except (BrokerError, WorkqueueError, TimeoutError) as exc:
        # The broker could not be started, or stopped answering before the run could begin
        # (a vhost not created in time, or one a node would not open: CI, 2026-12-05): one
        # line, no traceback.
        print(f"{p.prog}: error: {' '.join(str(exc).split())[:500]}", file=sys.stderr)
        return 3
    print(table(result), flush=True)
    if args.plot:
        plot(result, args.plot)
        print(f"plot: {args.plot}", flush=True)
    return 1 if result.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
