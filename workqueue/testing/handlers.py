"""Task handlers for ``python -m workqueue.worker --handler MODULE:FUNCTION`` in scenarios."""

from __future__ import annotations

import os
import signal

from workqueue.consumer import Delivery


class PoisonTask(Exception):
    pass


def fail_on_poison(delivery: Delivery) -> None:
    """Fails every task whose text contains "poison"; does the others at once."""
    if "poison" in (delivery.text or ""):
        raise PoisonTask(f"cannot handle {delivery.display()}")


def die_on_crash(delivery: Delivery) -> None:
    """Kills its own worker process on every task whose text contains "crash" (SIGKILL: no
    exception, no cleanup, as a segfault or the kernel's OOM killer would); does the others at
    once."""
    if "crash" in (delivery.text or ""):
        os.kill(os.getpid(), signal.SIGKILL)
