"""Task handlers for ``python -m workqueue.worker --handler MODULE:FUNCTION`` in scenarios."""

from __future__ import annotations

from workqueue.consumer import Delivery


class PoisonTask(Exception):
    pass


def fail_on_poison(delivery: Delivery) -> None:
    """Fails every task whose text contains "poison"; does the others at once."""
    if "poison" in (delivery.text or ""):
        raise PoisonTask(f"cannot handle {delivery.display()}")
