"""Which broker a client uses, in what order it tries the others, and how long it waits
between attempts: the one failover loop of the Producer and the Worker."""

from __future__ import annotations

import logging

from workqueue.errors import BadUrl, BrokerUnreachable, ConnectionLost

log = logging.getLogger(__name__)


def candidates(params):
    """The brokers to try, in order: ``params`` may be one ConnectionParameters or several
    (the nodes of a cluster)."""
    items = list(params) if isinstance(params, (list, tuple)) else [params]
    if not items:
        raise BadUrl("no broker URL given")
    return items


class Failover:
    """The brokers a client may use and the one it uses now: the one failover loop of the
    Producer and the Worker. ``params`` is one pika ConnectionParameters or several."""

    def __init__(self, params):
        self.candidates = candidates(params)
        self.current = 0

    @property
    def params(self):
        """The ConnectionParameters of the broker in use (or to be tried first)."""
        return self.candidates[self.current]

    def skip(self):
        """After a lost connection: try another broker first next time."""
        self.current = (self.current + 1) % len(self.candidates)

    def first_answering(self, attempt):
        """``attempt(params)`` on each broker in turn, from the current one, which follows; the
        first that does not raise BrokerUnreachable wins. A refusal (credentials, queue) or a
        lost connection is raised at once; when none answers, the last one's error is."""
        first = self.current
        for offset in range(len(self.candidates)):
            self.current = (first + offset) % len(self.candidates)
            try:
                return attempt(self.params)
            except ConnectionLost:
                raise
            except BrokerUnreachable as exc:
                if offset == len(self.candidates) - 1:
                    raise
                log.info("%s; trying the next broker", exc)
        raise AssertionError("unreachable")          # pragma: no cover


class Backoff:
    """Delays between reconnection attempts: ``initial``, doubling up to ``maximum``."""

    def __init__(self, initial=0.2, maximum=1.0):
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def reset(self):
        self._next = self.initial

    def next(self):
        delay, self._next = self._next, min(self._next * 2, self.maximum)
        return delay
