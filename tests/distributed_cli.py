"""The ``warpfields`` command as one rank of the torchrun jobs in tests/test_distributed.py, with a fault on rank 1.

FAULT=elsewhere: rank 1 runs in the folder ``elsewhere``, which lacks the inputs (a machine without the
file). FAULT=killed: rank 1 is killed (SIGKILL) in its second training step.
"""

import os
import signal
import sys

from warpfields.cli import main
from warpfields.torch.bridge import HybridModule

fault = os.environ.get("FAULT")
if os.environ["RANK"] == "1" and fault == "elsewhere":
    os.chdir("elsewhere")
if os.environ["RANK"] == "1" and fault == "killed":
    forward = HybridModule.forward
    calls = []

    def dying(self, x):
        calls.append(x)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return forward(self, x)

    HybridModule.forward = dying
sys.exit(main(sys.argv[1:]))
