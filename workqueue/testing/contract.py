"""The worker contract (docs/conformance.md): what the steps ask of a worker, said to another
implementation through its environment, and what it reports back through its events file.

The specification's harness: the steps start every worker through it, and the conformance
runner (conformance/) is one of its users; nothing here imports the runner. An implementation
is anything with the attributes of conformance.manifest.Implementation that are used here
(``id``, ``directory``, ``command``, ``send``, ``fill``, ``lacks``; the steps also read ``queue``
and ``dead_letter``).

The steps speak the project's worker's options (``--prefetch 1``, ``--heartbeat 1``...).
``worker_environment`` turns them into the contract's variables, and says which capability each
needs: an option an implementation cannot honour makes the scenario not applicable to it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from workqueue.testing.processes import WorkerProcess, child_env
from workqueue.worker import connection_name

#: The knobs a scenario may need to turn on a worker. A scenario that needs one an implementation
#: lacks is "not applicable" for it, with that reason. Behaviours are not capabilities: every
#: worker runs the reconnect and shutdown scenarios, and what it does there is its cell.
CAPABILITIES = {
    "prefetch": "a prefetch knob (WORKER_PREFETCH; 0 is no limit)",
    "prefetch_limit_only": "a prefetch knob that takes a limit only (WORKER_PREFETCH of 1 or more): a scenario "
                           "asking for no limit (0) is not applicable",
    "heartbeat": "a client heartbeat it can be given (WORKER_HEARTBEAT)",
    "one_at_a_time": "works on one task at a time: the tasks it prefetched wait for the one in hand",
    "several_urls": "several broker URLs (WORKER_URL, space-separated), tried in turn",
    "redelivered": "reports the redelivered flag of each task",
    "fail_on": "fails the tasks that mention WORKER_FAIL_ON",
    "crash_on": "dies, as a crash would (SIGKILL of its own process, or an abort), on a task that mentions "
                "WORKER_CRASH_ON",
    "quorum": "declares and consumes a quorum queue (WORKER_QUEUE_TYPE; a framework with a queue of its own "
              "gets one by its virtual host's default queue type)",
    "dead_letter": "declares its queue with a dead-letter queue (WORKER_DEAD_LETTER; a framework with a queue "
                   "of its own names its own in its manifest's dead_letter)",
    "auto_ack": "takes each task as settled as it is delivered when WORKER_AUTO_ACK is 1 (automatic "
                "acknowledgment in AMQP 0-9-1, a pre-settled link in AMQP 1.0)",
    "client_prefetch": "an AMQP 1.0 worker that leaves its link credit at its client's default when "
                       "WORKER_CLIENT_PREFETCH is 1, instead of the tutorial's 1 (an AMQP 0-9-1 client has no "
                       "default credit: without basic.qos there is no limit, the fair-dispatch contrast)",
    "settle_failed": "settles a task it failed (WORKER_FAIL_ON) with the AMQP 1.0 outcome WORKER_SETTLE_FAILED "
                     "names: released, modified (delivery-failed) or rejected",
}
#: Former capabilities, now behaviours every implementation is run for (a manifest naming one
#: is refused, saying so).
BEHAVIOURS = {"reconnects": "the broker restart and crash scenarios", "graceful_signal": "the SIGTERM scenarios"}
#: Events a worker may report (in WORKER_EVENTS); one it does not, the steps take from the broker.
EVENTS = ("consuming", "received", "done")


class NotApplicable(Exception):
    """The scenario needs a capability the implementation lacks (the message says which)."""


#: Option of the project's worker, or of the contract alone (--settle-failed: the project's worker
#: lacks its capability, so a scenario using it is not applicable to it) -> (contract variable,
#: capability it needs or None).
OPTIONS = {
    "--name": ("WORKER_NAME", None),
    "--seconds-per-dot": ("WORKER_SECONDS_PER_DOT", None),
    "--queue": ("WORKER_QUEUE", None),
    "--queue-type": ("WORKER_QUEUE_TYPE", None),
    "--prefetch": ("WORKER_PREFETCH", "prefetch"),
    "--heartbeat": ("WORKER_HEARTBEAT", "heartbeat"),
    "--delivery-limit": ("WORKER_DELIVERY_LIMIT", None),
    "--dead-letter": ("WORKER_DEAD_LETTER", "dead_letter"),
    "--settle-failed": ("WORKER_SETTLE_FAILED", "settle_failed"),
}
#: Handlers of the project's worker -> (the contract's variable, its value, the capability).
HANDLERS = {"workqueue.testing.handlers:fail_on_poison": ("WORKER_FAIL_ON", "poison", "fail_on"),
            "workqueue.testing.handlers:die_on_crash": ("WORKER_CRASH_ON", "crash", "crash_on")}
#: Flags (no value) of the project's worker, or of the contract alone (--client-prefetch, as
#: --settle-failed above) -> (contract variable, set to 1; capability it needs).
FLAGS = {"--auto-ack": ("WORKER_AUTO_ACK", "auto_ack"),
         "--client-prefetch": ("WORKER_CLIENT_PREFETCH", "client_prefetch")}
#: Options of the project's worker with no equivalent in the contract: only it has them.
ONLY_THE_REFERENCE = {
    "--no-reconnect": "option not to reconnect (a contrast of the project's own worker)",
    "--transient": "a transient queue",
}
#: Every variable of the contract (a worker never sees the user's own).
VARIABLES = ("WORKER_URL", "WORKER_EVENTS", "WORKER_FAIL_ON", "WORKER_CRASH_ON", "WORKER_CONNECTION_NAME",
             *sorted({variable for variable, _ in [*OPTIONS.values(), *FLAGS.values()]}))


def worker_environment(impl: Any, url: str | Sequence[str], options: Sequence[str]) -> dict[str, str]:
    """The contract's variables for a worker started with the project's ``options``; raises
    NotApplicable when one needs what ``impl`` lacks."""
    urls = [url] if isinstance(url, str) else list(url)
    env: dict[str, str] = {"WORKER_URL": " ".join(urls)}
    if len(urls) > 1 and (why := impl.lacks("several_urls")):
        raise NotApplicable(why)
    args = list(options)
    while args:
        option = args.pop(0)
        if option in ONLY_THE_REFERENCE:
            raise NotApplicable(f"not applicable: {impl.id} has no {ONLY_THE_REFERENCE[option]}")
        if option in FLAGS:
            flag_variable, flag_needs = FLAGS[option]
            if why := impl.lacks(flag_needs):
                raise NotApplicable(why)
            env[flag_variable] = "1"
            continue
        if option == "--handler":
            handler = args.pop(0)
            if handler not in HANDLERS:
                raise NotApplicable(f"not applicable: the contract has no handler {handler}")
            handler_variable, handler_value, handler_needs = HANDLERS[handler]
            if why := impl.lacks(handler_needs):
                raise NotApplicable(why)
            env[handler_variable] = handler_value
            continue
        if option not in OPTIONS:
            raise NotApplicable(f"not applicable: the contract has no equivalent of {option}")
        variable, capability = OPTIONS[option]
        value = args.pop(0)
        if capability == "prefetch" and value != "0" and not impl.lacks("prefetch_limit_only"):
            capability = None                       # a limit, which it takes
        if capability and (why := impl.lacks(capability)):
            raise NotApplicable(why)
        env[variable] = value
        if option == "--name":
            env["WORKER_CONNECTION_NAME"] = connection_name(value)
    if env.get("WORKER_QUEUE_TYPE") == "quorum" and (why := impl.lacks("quorum")):
        raise NotApplicable(why)
    return env


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without any WORKER_* variable of the user's, plus ``extra``."""
    env = {k: v for k, v in child_env().items() if not k.startswith("WORKER_")}
    env.update(extra)
    return env


def start_worker(impl: Any, name: str, url: str | Sequence[str], options: Sequence[str],
                 on_line: Callable[[str], object] | None = None) -> WorkerProcess:
    """One worker of ``impl``, as the project's worker would be started with ``options``."""
    env = worker_environment(impl, url, options)
    fd, events = tempfile.mkstemp(prefix=f"events-{impl.id}-{name}-", suffix=".jsonl")
    os.close(fd)
    env["WORKER_EVENTS"] = events
    command = [impl.fill(part) for part in impl.command]
    worker = WorkerProcess(name, url, *options, env=_clean_env(env), cwd=str(impl.directory), on_line=on_line,
                           command=command, events=events)
    return worker


def send_with_adapter(impl: Any, url: str, queue: Sequence[str], bodies: Sequence[str],
                      timeout: float) -> None:
    """Hand ``bodies`` to the implementation's adapter command (one per line on its stdin); it
    exits 0 once the broker has confirmed each one. ``queue``: the queue's options, as the
    project's worker takes them (the adapter declares the queue as the worker does)."""
    assert impl.send is not None
    env = worker_environment(impl, url, queue)
    command = [impl.fill(part) for part in impl.send]
    run = subprocess.run(command, input="".join(f"{b}\n" for b in bodies), text=True, capture_output=True,
                         timeout=timeout, cwd=str(impl.directory),
                         env=_clean_env(env))
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["(nothing on stderr)"])[-1]
        raise RuntimeError(f"{impl.id}'s adapter exited {run.returncode} sending {len(bodies)} task(s): {last}")
