"""The adapter: each line of stdin becomes one message of the actor (Dramatiq's own format),
published with confirms (confirm_delivery) to its queue; it exits 0 once all are confirmed."""

import sys

from tasks import work

for line in sys.stdin:
    work.send(line.rstrip("\n"))
