"""What a soak run is asked to do."""

from __future__ import annotations

import dataclasses

#: The fault kinds, as the config counts them and the nemesis makes them.
FAULTS = ("kill", "crash", "restart", "pause", "partition")


@dataclasses.dataclass(frozen=True)
class Config:
    n: int = 10_000                  # tasks to publish, each uniquely numbered
    workers: int = 4                 # worker processes running at any time
    prefetch: int = 10
    window: int = 500                # the producer's confirm window
    backlog: int = 1000              # most tasks confirmed but not yet processed
    queue_type: str = "quorum"
    kills: int = 5
    crashes: int = 1
    restarts: int = 1
    pauses: int = 0
    partitions: int = 0
    fault_seconds: float = 20.0      # how long a pause or a partition lasts
    work_ms: float = 0.0             # simulated work per task
    cluster: bool = False
    broker: str | None = None        # auto, node, container (None: the harness's default)
    seed: int = 0
    max_seconds: float = 900.0
    stall_seconds: float = 60.0
    progress: str = "auto"           # auto, plain, none

    def count(self, kind: str) -> int:
        """How many faults of ``kind`` the run is to make."""
        return {"kill": self.kills, "crash": self.crashes, "restart": self.restarts,
                "pause": self.pauses, "partition": self.partitions}[kind]

    def problems(self) -> list[str]:
        """What makes this config unusable, one line each (empty: fine)."""
        out = []
        if min(self.n, self.workers, self.prefetch, self.window) < 1:
            out.append("-n, --workers, --prefetch and --window must be at least 1")
        if min(self.count(kind) for kind in FAULTS) < 0 or self.fault_seconds <= 0:
            out.append("fault counts must be 0 or more, and --fault-seconds more than 0")
        if self.partitions and not self.cluster:
            out.append("--partitions needs --cluster (a node is cut off from the other two)")
        return out
