"""The book-keeping of one ``Producer.publish_many`` call: what is sent, confirmed and failed.

Pure (no I/O): delivery tags on a channel are consecutive, so the unconfirmed bodies are one
deque in tag order; a tag the broker confirms alone, ahead of the first, is kept aside until
the ones before it are confirmed too.
"""

from __future__ import annotations

import collections
import time


class Batch:
    """Book-keeping for one publish_many call: what is sent, confirmed and failed.

    Delivery tags on a channel are consecutive, so the unconfirmed bodies are one deque in tag
    order, the first at ``first_tag``; a tag confirmed alone ahead of the first is kept aside.
    """

    def __init__(self, bodies, window, on_confirm=None, window_bytes=None):
        self._bodies = bodies
        self._resend: collections.deque[bytes] = collections.deque()   # unconfirmed when a connection was lost
        self.on_confirm = on_confirm
        self.lost = False                      # the error is a lost connection (worth a retry)
        self.nacked_since = None               # first nack since the last ack
        self.window = max(1, window)
        self.window_bytes = window_bytes       # None: no bound on the bytes in flight
        self._unconfirmed: collections.deque[bytes] = collections.deque()
        self.unconfirmed_bytes = 0             # of the bodies sent and not confirmed yet
        self.first_tag = 1
        self._early = set()                    # tags confirmed singly, out of order
        self.exhausted = False
        self.done = False
        self.error = None
        self.confirmed = 0
        self.progress_at = time.monotonic()    # the last confirm, or the last (re)start of sending
        self.confirmed_at = self.progress_at    # the last confirm (or nack): not reset by a reconnect

    @property
    def unconfirmed(self):
        return len(self._unconfirmed) - len(self._early)

    @property
    def last_tag(self):
        """The delivery tag of the last task published on the current channel."""
        return self.first_tag + len(self._unconfirmed) - 1

    def acked(self, bodies):
        """These tasks are confirmed: count them, report them, end any run of nacks."""
        self.nacked_since = None
        self.confirmed += len(bodies)
        if self.on_confirm is not None:
            for body in bodies:
                self.on_confirm(body)

    def nacked_for(self):
        """Seconds since the first nack of the current run of nacks (starting one now)."""
        now = time.monotonic()
        if self.nacked_since is None:
            self.nacked_since = now
        return now - self.nacked_since

    def finish(self):
        self.done = True

    def rebase(self, first_tag):
        """The channel's next delivery tag (nothing is unconfirmed at this point)."""
        self.first_tag = first_tag

    def take(self, count):
        """Up to ``count`` bodies to publish next (re-sends first), recorded as unconfirmed.

        With ``window_bytes``, fewer: the bodies in flight stay within that many bytes, except
        that one task is always let through when none is in flight (a task larger than the
        bound is sent alone)."""
        out: list[bytes] = []
        room = None if self.window_bytes is None else self.window_bytes - self.unconfirmed_bytes
        resend = self._resend
        while len(out) < count:
            if resend:
                body = resend.popleft()
            elif self.exhausted:
                break
            else:
                try:
                    task = next(self._bodies)
                except StopIteration:
                    self.exhausted = True
                    break
                body = task.encode("utf-8") if isinstance(task, str) else bytes(task)
            if room is not None:
                if len(body) > room and (out or self._unconfirmed):
                    resend.appendleft(body)          # the next to go, once confirms make room
                    break
                room -= len(body)
            out.append(body)
        self._unconfirmed.extend(out)
        self.unconfirmed_bytes += sum(map(len, out))
        if self.exhausted and not self._unconfirmed and not self._resend:
            self.done = True
        return out

    def first_unconfirmed(self):
        for offset, body in enumerate(self._unconfirmed):
            if self.first_tag + offset not in self._early:
                return body
        return b""

    def confirm(self, tag, multiple):
        """Mark confirmed; return the bodies newly confirmed, in tag order."""
        self.progress_at = self.confirmed_at = time.monotonic()
        pending = self._unconfirmed
        done = []
        if multiple:
            count = min(tag - self.first_tag + 1, len(pending))
            if count > 0:
                if self._early:
                    for offset in range(count):
                        body = pending.popleft()
                        if self.first_tag + offset in self._early:
                            self._early.discard(self.first_tag + offset)
                        else:
                            done.append(body)
                else:
                    done = [pending.popleft() for _ in range(count)]
                self.first_tag += count
        elif tag == self.first_tag and pending:
            done.append(pending.popleft())
            self.first_tag += 1
        elif 0 < tag - self.first_tag < len(pending) and tag not in self._early:
            self._early.add(tag)
            done.append(pending[tag - self.first_tag])
        while pending and self.first_tag in self._early:
            self._early.discard(self.first_tag)
            pending.popleft()
            self.first_tag += 1
        self.unconfirmed_bytes -= sum(map(len, done))
        if self.exhausted and not pending and not self._resend:
            self.done = True
        return done

    def resend(self, body):
        """Publish ``body`` again (after a nack), before any new task."""
        self._resend.append(body)
        self.done = False

    def fail(self, error, lost=False):
        if self.error is None:
            self.error = error
            self.lost = lost

    def requeue_unconfirmed(self):
        """After a lost connection: every task not yet confirmed is to be published again, first
        (delivery tags start again at 1 on the next channel)."""
        again = [body for offset, body in enumerate(self._unconfirmed)
                 if self.first_tag + offset not in self._early]
        self._resend.extendleft(reversed(again))
        self._unconfirmed.clear()
        self.unconfirmed_bytes = 0
        self._early.clear()
        self.error = None
        self.lost = False
        self.done = False
        self.progress_at = time.monotonic()
