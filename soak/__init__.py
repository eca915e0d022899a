"""``make soak``: a chaos soak of workqueue on a throwaway broker or 3-node cluster, and a checker.

Publishes N uniquely numbered persistent tasks with confirms (the producer fails over and
re-sends what was not confirmed), runs W real worker processes, and meanwhile SIGKILLs
workers, crashes the broker (kill -9 / docker kill), restarts it gracefully, pauses it, and
on a cluster cuts a node off the network; on a cluster (``--cluster``) each broker fault hits
one node at a time, the quorum queue's leader. The run stops by itself: when every confirmed
task is done and the queue is empty, or at --max-seconds.

Its parts are Jepsen's, each a module:

- ``config``: what a run is asked to do (a dataclass; ``python -m soak`` builds it from argv);
- ``generator``: the fault schedule, each fault due at a count of tasks done;
- ``nemesis``: makes a fault on the harness's fault interface and ends it, one at a time;
- ``client``: the publisher (``workqueue.Producer``) and the worker processes, with
  ``handlers.record`` as the workers' handler;
- ``history``: one append-only log of what happened (published, confirmed, done, fault start
  and end);
- ``checker``: ``check(config, history, facts)``, the verdict;
- ``report``: the table and the plot;
- ``run``: the loop that drives them.

A new fault kind is one method of the nemesis and one count in the config.
"""

from soak.checker import Result, check
from soak.config import Config
from soak.history import History

__all__ = ["Config", "History", "Result", "check"]
