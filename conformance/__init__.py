"""The specification as a conformance suite: the features' worker scenarios run against any
implementation of a work-queue worker, each behind one contract (docs/conformance.md).

    python -m conformance [--impl ID,...] [--impl-file PATH]    # or: make conformance
"""
