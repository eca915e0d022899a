"""Jepsen's generator: the faults of a run, shuffled, each due at a count of tasks done."""

from __future__ import annotations

import collections
import random

from soak.config import FAULTS, Config


class Generator:
    def __init__(self, config: Config, rng: random.Random):
        kinds = [kind for kind in FAULTS for _ in range(config.count(kind))]
        rng.shuffle(kinds)
        step = config.n / (len(kinds) + 1)
        self.pending = collections.deque((int(step * (i + 1)), kind) for i, kind in enumerate(kinds))
        self.total = len(kinds)

    def due(self, done: int, publisher_waiting: bool) -> str | None:
        """The next fault, once enough tasks are done (or at once when the publisher holds back
        its last chunk for the faults); None when none is due."""
        if self.pending and (done >= self.pending[0][0] or publisher_waiting):
            return self.pending[0][1]
        return None

    def take(self) -> str:
        return self.pending.popleft()[1]

    @property
    def fired(self) -> int:
        return self.total - len(self.pending)

    @property
    def remaining(self) -> int:
        return len(self.pending)
