"""The ``warpfields`` command as one rank of the torchrun jobs in tests/test_distributed.py, with a fault on rank 1.

FAULT=elsewhere: rank 1 runs in the folder ``elsewhere``, which lacks the inputs (a machine without the
file). FAULT=killed: rank 1 is killed (SIGKILL) in its second training step, while rank 0 is still busy
with that step (torchrun then stops rank 0 with SIGTERM).
"""

import os
import signal
import sys
import time

from warpfields.cli import main
from warpfields.torch.bridge import HybridModule

fault = os.environ.get("FAULT")
if os.environ["RANK"] == "1" and fault == "elsewhere":
    os.chdir("elsewhere")
if fault == "killed":
    forward = HybridModule.forward
    calls = []

    def second_step_fails(self, x):
        calls.append(x)
        if len(calls) == 2 and os.environ["RANK"] == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        if len(calls) == 2:
            time.sleep(60)
        return forward(self, x)

    HybridModule.forward = second_step_fails
sys.exit(main(sys.argv[1:]))
