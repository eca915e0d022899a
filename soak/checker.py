"""The checker, Jepsen-style: ``check(config, history, facts)`` reads what a run did and says
whether it kept at least once.

It fails a run when a confirmed task was never processed (lost), a processed task was never
published (unexpected), or duplicates exceed
kills x prefetch + (crashes + restarts + pauses + partitions) x (workers x prefetch + window):
a killed worker's prefetch comes back, and a broker fault can redeliver every worker's prefetch
and make the producer re-send a whole window. It also fails a run that could not come to a
verdict (the producer gave up, a worker died, nothing moved, time ran out), one in which a
scheduled fault never struck, and one with a fault whose effect was not seen as it struck (the
shared nemesis, workqueue.testing.nemesis: a crash that was not a SIGKILL, a pause that froze
nothing, a partition that left the node reachable, a leader fault after which no other node
led the queue).
"""

from __future__ import annotations

import collections
import dataclasses

from soak.config import Config
from soak.history import History


@dataclasses.dataclass
class Facts:
    """What the run measured beside the history."""
    version: str
    kind: str                       # the backend
    boot: float = 0.0               # seconds to start the broker or cluster
    wall: float = 0.0               # seconds from the first publish to the last task
    producer_error: str | None = None
    timed_out: str | None = None
    producer_reconnections: int = 0
    resent_after_nack: int = 0
    worker_reconnections: int = 0
    workers_started: int = 0
    unfired: int = 0                # scheduled faults that never struck
    notes: list = dataclasses.field(default_factory=list)      # what the run chose, for the reader
    problems: list = dataclasses.field(default_factory=list)   # failures seen while it ran


@dataclasses.dataclass
class Result:
    config: Config
    facts: Facts
    history: History

    @property
    def published(self) -> set[str]:
        return set(self.history.published)

    @property
    def confirmed(self) -> set[str]:
        return self.history.confirmed

    @property
    def counts(self) -> collections.Counter[str]:
        return self.history.done

    @property
    def faults(self) -> collections.Counter[str]:
        return self.history.faults()

    @property
    def lost(self) -> list[str]:
        return sorted(self.confirmed - set(self.counts))

    @property
    def unexpected(self) -> list[str]:
        return sorted(set(self.counts) - self.published)

    @property
    def duplicates(self) -> int:
        return sum(self.counts.values()) - len(self.counts)

    @property
    def broker_faults(self) -> int:
        return sum(count for kind, count in self.faults.items() if kind != "kill")

    @property
    def duplicate_bound(self) -> int:
        c = self.config
        return self.faults["kill"] * c.prefetch + self.broker_faults * (c.workers * c.prefetch + c.window)

    def failures(self) -> list[str]:
        out = []
        if self.lost:
            out.append(f"{len(self.lost)} confirmed task(s) never processed, e.g. {self.lost[:5]}")
        if self.unexpected:
            out.append(f"{len(self.unexpected)} processed task(s) never published, e.g. {self.unexpected[:5]}")
        if self.duplicates > self.duplicate_bound:
            out.append(f"{self.duplicates} duplicates, over the bound of {self.duplicate_bound}")
        f = self.facts
        if f.producer_error:
            out.append(f"the producer gave up: {f.producer_error}")
        if f.timed_out:
            out.append(f.timed_out)
        if len(self.confirmed) < self.config.n and not f.producer_error:
            out.append(f"only {len(self.confirmed)} of {self.config.n} tasks confirmed")
        if f.unfired:
            out.append(f"{f.unfired} scheduled fault(s) never happened: the work was done first "
                       f"(more tasks, or --work-ms, make room for them)")
        for w in self.history.windows:
            if w.unobserved:
                out.append(f"a {w.kind} of {w.member} had no effect: {w.unobserved}")
            elif not w.observed:
                out.append(f"a {w.kind} of {w.member} was not observed as it struck")
        out.extend(f.problems)
        return out


def check(config: Config, history: History, facts: Facts) -> Result:
    return Result(config, facts, history)
