"""The report of a soak: its table, and its plot as Jepsen draws its rate and latency graphs
(``--plot``): tasks confirmed and done per second, publish-to-done latency, each fault's window.
"""

from __future__ import annotations

import dataclasses
import math

from soak.checker import Result
from soak.history import History


@dataclasses.dataclass
class Timeline:
    start: float
    published: dict = dataclasses.field(default_factory=dict)    # body -> first publish time
    confirmed: list = dataclasses.field(default_factory=list)    # confirm times
    done: list = dataclasses.field(default_factory=list)         # (body, time) of every finish
    windows: list = dataclasses.field(default_factory=list)

    @classmethod
    def of(cls, history: History) -> Timeline:
        """The times the plot and the latency rows need, read from the history (a task done
        without its time is counted by the checker, not timed here)."""
        return cls(start=history.start, published=dict(history.published),
                   confirmed=[at for at, _ in history.of("confirmed")],
                   done=[(body, at) for at, body in history.of("done") if not math.isnan(at)],
                   windows=list(history.windows))

    def latencies(self):
        """Publish-to-done seconds of each task, by the time it was first done: [(done, latency)]."""
        first: dict[str, float] = {}
        for body, at in self.done:
            if body not in first or at < first[body]:
                first[body] = at
        return sorted((at, at - self.published[body]) for body, at in first.items() if body in self.published)

    def summary(self):
        """Latency percentiles over the whole run (seconds): p50, p90, p99, max; None if no task."""
        values = sorted(latency for _, latency in self.latencies())
        if not values:
            return None
        return {"p50": percentile(values, 50), "p90": percentile(values, 90),
                "p99": percentile(values, 99), "max": values[-1]}

    def per_second(self):
        """Seconds since the start, with confirmed/s, done/s, and latency median/p99/max of the
        tasks first done in that second (None where none was)."""
        end = max([self.start] + self.confirmed + [at for _, at in self.done]
                  + [w.end for w in self.windows])
        seconds = int(math.ceil(end - self.start)) + 1
        confirmed, done = [0] * seconds, [0] * seconds
        for at in self.confirmed:
            confirmed[min(seconds - 1, max(0, int(at - self.start)))] += 1
        for _, at in self.done:
            done[min(seconds - 1, max(0, int(at - self.start)))] += 1
        buckets: list[list[float]] = [[] for _ in range(seconds)]
        for at, latency in self.latencies():
            buckets[min(seconds - 1, max(0, int(at - self.start)))].append(latency)
        rows = []
        for s in range(seconds):
            values = sorted(buckets[s])
            rows.append((s, confirmed[s], done[s],
                         percentile(values, 50) if values else None,
                         percentile(values, 99) if values else None,
                         values[-1] if values else None))
        return rows

    def plot(self, path, title):
        """Two panels, as Jepsen's: rates on top, latency below (log scale), each fault's window
        shaded and labelled. Needs matplotlib (the plot extra)."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = self.per_second()
        xs = [r[0] for r in rows]
        fig, (rate, lat) = plt.subplots(2, 1, figsize=(12, 7), sharex=True,
                                        gridspec_kw={"height_ratios": [1, 1]})
        rate.plot(xs, [r[1] for r in rows], label="confirmed / s", color="#1f77b4", linewidth=0.6, alpha=0.6)
        rate.plot(xs, [r[2] for r in rows], label="done / s", color="#2ca02c", linewidth=1.5)
        rate.set_ylabel("tasks per second")
        rate.set_title(title.replace("; ", "\n", 1), fontsize=9)
        for label, column, color in (("median", 3, "#2ca02c"), ("p99", 4, "#ff7f0e"), ("max", 5, "#d62728")):
            # a second in which no task was done is a gap in the line, not a slope across it
            values = [max(r[column], 1e-3) if r[column] is not None else math.nan for r in rows]
            lat.plot(xs, values, label=label, color=color, linewidth=1, marker=".", markersize=3)
        lat.set_yscale("log")
        lat.set_ylabel("publish to done (s)")
        lat.set_xlabel("seconds since the first publish")
        colors = {"pause": "#9467bd", "partition": "#8c564b", "crash": "#d62728", "restart": "#ff7f0e",
                  "kill": "#7f7f7f"}
        labelled = set()
        level = 0
        for w in self.windows:
            a, b = w.start - self.start, w.end - self.start
            color = colors.get(w.kind, "#bcbd22")
            for axis in (rate, lat):
                if b - a < 0.5:
                    axis.axvline(a, color=color, alpha=0.5, linewidth=1,
                                 label=None if (w.kind, axis) in labelled else w.kind)
                else:
                    axis.axvspan(a, b, color=color, alpha=0.15,
                                 label=None if (w.kind, axis) in labelled else w.kind)
                labelled.add((w.kind, axis))
            if w.kind != "kill":           # labels on three levels, so neighbours do not overlap
                rate.annotate(f"{w.kind} {w.member.split(' (')[0]}", xy=(a, 1.0),
                              xycoords=("data", "axes fraction"), xytext=(2, -10 - 10 * (level % 3)),
                              textcoords="offset points", fontsize=7, color=color)
                level += 1
        rate.legend(loc="upper right", fontsize=8)
        lat.legend(loc="upper right", fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)


def percentile(sorted_values, p):
    """The nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def title(result: Result) -> str:
    c, f = result.config, result.facts
    where = f"{'3-node cluster' if c.cluster else 'one broker'}, durable {c.queue_type} queue"
    return (f"chaos soak: RabbitMQ {f.version} ({f.kind}, {where}); N={c.n}, {c.workers} workers, "
            f"prefetch {c.prefetch}, confirm window {c.window}, {c.work_ms:g} ms of work a task, seed {c.seed}")


def table(result: Result) -> str:
    c, f, faults = result.config, result.facts, result.faults
    fault = "node" if c.cluster else "broker"
    rows = [
        ("published", len(result.published), "distinct tasks handed to the producer"),
        ("confirmed", len(result.confirmed), "confirmed by the broker (after re-sends, if any)"),
        ("processed (unique)", len(result.counts), "distinct tasks a worker finished"),
        ("lost", len(result.lost), "confirmed, never processed (must be 0)"),
        ("unexpected", len(result.unexpected), "processed, never published (must be 0)"),
        ("duplicates", result.duplicates,
         f"extra runs of a task; bound: kills x prefetch + (crashes + restarts + pauses + partitions)"
         f" x (workers x prefetch + window) = {faults['kill']}x{c.prefetch} + {result.broker_faults}"
         f"x({c.workers}x{c.prefetch}+{c.window}) = {result.duplicate_bound}"),
        ("worker kills", faults["kill"], "SIGKILL of a busy worker, replaced at once"),
        (f"{fault} crashes", faults["crash"], "kill -9 / docker kill, then start on the same data"),
        (f"graceful {fault} restarts", faults["restart"], "stop, then start"),
        (f"{fault} pauses", faults["pause"],
         f"SIGSTOP / docker pause for {c.fault_seconds:g} s, then SIGCONT / unpause"),
        (f"{fault} partitions", faults["partition"],
         f"cut off from the other nodes and the clients for {c.fault_seconds:g} s, then joined again"),
        ("producer reconnections", f.producer_reconnections, "unconfirmed tasks re-sent each time"),
        ("re-sent after a nack", f.resent_after_nack, "tasks the broker nacked (no leader yet), sent again"),
        ("worker reconnections", f.worker_reconnections, f"over {f.workers_started} worker processes"),
        ("wall time", f"{f.wall:.0f} s", f"from the first publish to the last task; boot {f.boot:.0f} s"),
    ]
    timeline = Timeline.of(result.history)
    latency = timeline.summary()
    if latency:
        rows.append(("latency p50", f"{latency['p50']:.3f} s",
                     f"publish to first done, over every task; p90 {latency['p90']:.3f} s, "
                     f"p99 {latency['p99']:.3f} s, max {latency['max']:.3f} s"))
    for w in timeline.windows:
        if w.kind != "kill":
            seen = (f"; NOT OBSERVED: {w.unobserved}" if w.unobserved
                    else f"; seen: {w.observed}" if w.observed else "")
            rows.append((f"  {w.kind}", f"{w.end - w.start:.0f} s",
                         f"{w.member} at {w.start - timeline.start:.0f} s" + (f"; {w.note}" if w.note else "") + seen))
    lines = [title(result), f"{'':<26}{'count':>9}  notes"]
    lines += [f"{name:<26}{value:>9}  {note}" for name, value, note in rows]
    lines += [f"note: {note}" for note in f.notes]
    failures = result.failures()
    lines.append("verdict: " + ("PASS" if not failures else "FAIL: " + "; ".join(failures)))
    return "\n".join(lines)


def plot(result: Result, path: str) -> None:
    Timeline.of(result.history).plot(path, title(result))
