"""The soak's worker handler (``--handler soak.handlers:record``)."""

import os
import time

RECORD_ENV = "WORKQUEUE_SOAK_RECORD"
WORK_ENV = "WORKQUEUE_SOAK_WORK_SECONDS"
_record_fd = None


def record(delivery):
    """Note the task as processed: one O_APPEND write per task (``body time``) into a file of
    this process, so it is in the file as soon as write() returns and a SIGKILL right after
    loses nothing that was recorded."""
    global _record_fd
    work = float(os.environ.get(WORK_ENV) or 0)
    if work:
        time.sleep(work)                    # the task's simulated work
    if _record_fd is None:
        path = os.path.join(os.environ[RECORD_ENV], f"{os.getpid()}.done")
        _record_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.write(_record_fd, delivery.body + f" {time.time():.4f}\n".encode())
