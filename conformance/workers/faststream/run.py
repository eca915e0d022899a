"""Start ``faststream run tasks:app`` in this process, as FastStream documents it."""

import os
import sys

faststream = os.path.join(os.path.dirname(sys.executable), "faststream")
os.execv(faststream, [faststream, "run", "tasks:app"])
