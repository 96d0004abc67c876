"""Every long-running process a test starts (the control plane, sandboxed sshd, http servers):
started so that it ends with the test process, even when that process is killed.

`spawn` runs the program under util-linux's `setpriv --pdeathsig KILL`: the kernel sends it
SIGKILL when the thread that started it ends (PR_SET_PDEATHSIG), so a test run stopped at a time
limit, or killed outright, leaves nothing behind. Tests still stop what they start, by PID, when
they can; this is for when they cannot. No preexec_fn: it is not safe while other threads run
(the stand-in kubelet's do). The signal is set once setpriv runs, a moment after spawn returns:
a parent killed within that moment leaves the child (the harness's processes live for minutes).
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"


def spawn(argv: list[str], **popen: Any) -> subprocess.Popen:
    """subprocess.Popen(argv, **popen), killed by the kernel when this process's calling thread
    ends. Call it from the thread that lives as long as the process should (the test's)."""
    return subprocess.Popen([SETPRIV, "--pdeathsig", "KILL", "--", *argv], **popen)
