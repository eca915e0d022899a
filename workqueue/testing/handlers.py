"""Task handlers for ``python -m workqueue.worker --handler MODULE:FUNCTION`` in scenarios."""


class PoisonTask(Exception):
    pass


def fail_on_poison(delivery):
    """Fails every task whose text contains "poison"; does the others at once."""
    if "poison" in (delivery.text or ""):
        raise PoisonTask(f"cannot handle {delivery.display()}")
