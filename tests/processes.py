"""Every long-running process a test starts (the control plane, sandboxed sshd, http servers):
started so that it ends with the test process, even when that process is killed.

`spawn` runs the program under util-linux's `setpriv --pdeathsig KILL`: the kernel sends it
SIGKILL when the thread that started it ends (PR_SET_PDEATHSIG). That thread is one spawner
thread that lives as long as the test process, whichever thread asks (a test's helper thread
that restarts a host and ends must not take the host with it), so a test run stopped at a time
limit, or killed outright, leaves nothing behind. Tests still stop what they start, by PID; this
is for when they cannot. No preexec_fn: it is not safe while other threads run. The signal is
set once setpriv runs, a moment after spawn returns: a parent killed within that moment leaves
the child (the harness's processes live for minutes).
"""

from __future__ import annotations

import queue
import shutil
import subprocess
import threading
from typing import Any

SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"

_requests: "queue.Queue[tuple[list[str], dict[str, Any], queue.Queue]]" = queue.Queue()
_started = threading.Lock()
_spawner: list[threading.Thread] = []


def _serve() -> None:
    while True:
        argv, popen, reply = _requests.get()
        try:
            reply.put(subprocess.Popen([SETPRIV, "--pdeathsig", "KILL", "--", *argv], **popen))
        except BaseException as e:  # handed to the caller, raised there
            reply.put(e)


def spawn(argv: list[str], **popen: Any) -> subprocess.Popen:
    """subprocess.Popen(argv, **popen), killed by the kernel when this test process ends."""
    with _started:
        if not _spawner:
            _spawner.append(threading.Thread(target=_serve, name="spawner", daemon=True))
            _spawner[0].start()
    reply: queue.Queue = queue.Queue(maxsize=1)
    _requests.put((argv, popen, reply))
    result = reply.get()
    if isinstance(result, BaseException):
        raise result
    return result
