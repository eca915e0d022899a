"""Start `dramatiq tasks --processes 1 --threads 1` in this process, its queue prefetch set from
WORKER_PREFETCH (default 1; Dramatiq has no "no limit", so 0 becomes its largest, 65535)."""

import os
import sys

prefetch = os.environ.get("WORKER_PREFETCH") or "1"
os.environ["dramatiq_queue_prefetch"] = "65535" if prefetch == "0" else prefetch
dramatiq = os.path.join(os.path.dirname(sys.executable), "dramatiq")
os.execv(dramatiq, [dramatiq, "tasks", "--processes", "1", "--threads", "1"])
