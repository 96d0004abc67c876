"""`rackctl status` as a command: read, compare, show; once or `--watch`.

Exit codes: 0 the rack matches its code, 1 drift, 2 the cluster could not be read (or bad input,
which rackctl's main turns into one line). Under --watch the code is the last refresh's.
"""

from __future__ import annotations

import os
import sys
import signal
import time
from pathlib import Path
from typing import Optional

from rackctl import kubeconfigs, outputs, stackfiles, status, status_views

CLEAR = "\x1b[H\x1b[2J"


def _page_path(out: str) -> Path:
    """--out: a new file, or a page rackctl status wrote before."""
    return outputs.file_path("--out", out, lambda p: status_views.GENERATOR in (outputs.head(p) or ""),
                             "rackctl status")


def run(stack: str, config_dir: Path, kubeconfig: Optional[str], fmt: str, out: Optional[str], watch: bool,
        interval: float) -> int:
    if out is not None and fmt != "html":
        raise status.StatusError("--out is for --format html; text and json go to stdout")
    page_path = _page_path(out) if out is not None else None
    if interval <= 0:
        raise status.StatusError(f"--interval: expected a number of seconds above 0, got {interval:g}")
    rack = stackfiles.settings_for(stack, config_dir)  # an unknown or bad stack stops here, before any cluster
    swarming = rack.enabled("swarming")
    colour = fmt == "text" and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    if not watch:
        return _refresh(stack, rack, kubeconfig, fmt, page_path, swarming, colour, None)
    # Ctrl-C ends the loop without an exception at an arbitrary point: a KeyboardInterrupt inside the
    # thread pool can leave its lock held (the exit then hangs), and a handler that takes a lock (an
    # Event) can deadlock with the code it interrupted. So the handler only sets a flag, and raises
    # only while the loop sleeps, where nothing holds a lock.
    state = {"stop": False, "sleeping": False}

    def on_sigint(*_: object) -> None:
        state["stop"] = True
        if state["sleeping"]:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    code = 0
    try:
        while not state["stop"]:
            code = _refresh(stack, rack, kubeconfig, fmt, page_path, swarming, colour, interval)
            try:
                state["sleeping"] = True
                if not state["stop"]:
                    time.sleep(interval)
            except KeyboardInterrupt:
                break
            finally:
                state["sleeping"] = False
        return code
    except KeyboardInterrupt:  # raised by the handler between the sleep and the flag's reset
        return code
    finally:
        signal.signal(signal.SIGINT, previous)


def _refresh(stack: str, rack, kubeconfig: Optional[str], fmt: str, out: Optional[Path], swarming: bool,
             colour: bool, interval: Optional[float]) -> int:
    """Read the cluster once and show it; the exit code of what it shows. `interval` is set under
    --watch, where a cluster that cannot be read is shown and retried rather than the end."""
    try:
        nodes, pods = status.read_cluster(stack, kubeconfig, swarming)
    except kubeconfigs.KubeconfigError as e:
        if interval is None:
            raise
        print(f"{CLEAR if colour else ''}rackctl: {e} (retrying in {interval:g}s)", flush=True)
        return 2
    current = status.compute(rack, nodes, pods, status.now())
    if fmt == "html":
        page = status_views.as_html(current, refresh=int(interval) if interval else None)
        if out:
            outputs.write_file(out, page)
        else:
            print(page, end="", flush=True)
    elif fmt == "json":
        print(status_views.as_json_text(current, compact=interval is not None), end="", flush=True)
    else:
        print((CLEAR if colour and interval else "") + status_views.as_text(current, colour), end="", flush=True)
    return 1 if current.drift else 0
