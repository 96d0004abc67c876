"""`rackctl status STACK`: the live rack held against its code.

Reads the cluster read-only with kubectl (`get --raw` of the Nodes and the swarming pods) through whatever
kubeconfig the operator gives it: `rackctl attach STACK -- rackctl status STACK` (attach's tunnel
and kubeconfig) or `--kubeconfig` (e.g. the observer's, `rackctl observer`). The kubeconfig must
name the stack's own cluster: a status of rack1 drawn from rack2 is refused. Then every Pi the
stack declares, in rack order, is compared with what the cluster says of it (`compute`); the views
are in rackctl/status_views.py.

Exit codes: 0 when the rack matches its code, 1 on drift (see `Pi.problems`), 2 when the cluster
cannot be read (no kubeconfig, unreachable, no rights) or the stack is bad.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

from components import labels as kube
from components.settings import Settings
from rackctl import kubeconfigs

SWARMING_NAMESPACE = kube.SWARMING_NAMESPACE
REQUEST_TIMEOUT = "15s"
_SHELF = re.compile(r"^(.*)-(\d+)$")


class StatusError(kubeconfigs.KubeconfigError):
    """The cluster could not be read, or bad input: one line, exit code 2."""


@dataclass(frozen=True)
class Bot:
    pod: str
    phase: str
    restarts: int
    crash_looping: bool


@dataclass
class Pi:
    name: str
    presence: str
    """ready, notReady, missing (in config, not in the cluster) or unknown (in the cluster only)."""
    ready: bool = False
    """The Node's Ready condition is True."""
    address: Optional[str] = None
    configured: Optional[str] = None
    """The state the stack declares (active, cordoned, drained); None for an unknown node."""
    observed: Optional[str] = None
    """What the Node is: active, cordoned or drained; None when missing."""
    maintenance: Optional[str] = None
    """The maintenance label's value (a k3s upgrade in progress), if any."""
    queued: bool = False
    """On an older k3s than the config pins while a roll is under way: the roll will reach it."""
    version: Optional[str] = None
    heartbeat: Optional[float] = None
    """Seconds since the Node's Ready condition was last posted."""
    bot: Optional[Bot] = None
    found: dict[str, str] = field(default_factory=dict)
    """What differs from the code, by kind (missing, notReady, state, skew, bot, unknown): one line each."""

    @property
    def problems(self) -> list[str]:
        return list(self.found.values())

    @property
    def severity(self) -> str:
        """ok, out (out of service as configured, or upgrading), problem, or unknown."""
        if self.presence == "unknown":
            return "unknown"
        if self.found:
            return "problem"
        return "out" if self.configured != "active" or self.maintenance or self.queued else "ok"

    @property
    def cell(self) -> str:
        """The one word a map shows for it: its worst news."""
        if self.presence != "ready":
            return self.presence.lower()
        if self.maintenance:
            return "upgrading"
        if self.queued:
            return "queued"
        if "skew" in self.found:
            return "skewed"
        if "bot" in self.found:
            return "crashloop" if self.bot and self.bot.crash_looping else "no bot"
        return "ready" if self.observed == "active" else str(self.observed)


@dataclass
class Status:
    stack: str
    k3s_version: str
    read_at: datetime
    shelves: list[tuple[str, list[Pi]]]
    unknown: list[Pi]
    jumphost: Pi

    @property
    def pis(self) -> list[Pi]:
        return [pi for _, pis in self.shelves for pi in pis]

    @property
    def drift(self) -> bool:
        return bool(self.unknown or self.jumphost.found or any(pi.found for pi in self.pis))

    def summary(self) -> str:
        pis = self.pis
        ready = sum(1 for pi in pis if pi.severity == "ok")
        parts = [f"{ready}/{len(pis)} Ready"]
        for state in ("cordoned", "drained"):
            n = sum(1 for pi in pis if pi.severity == "out" and pi.configured == state)
            if n:
                parts.append(f"{n} {state} as configured")
        upgrading = sum(1 for pi in pis if pi.severity == "out" and pi.maintenance)
        if upgrading:
            parts.append(f"{upgrading} upgrading")
        queued = sum(1 for pi in pis if pi.queued)
        if queued:
            parts.append(f"{queued} queued for the upgrade")
        for kind, label in (("missing", "missing"), ("notReady", "NotReady"), ("state", "not as configured"),
                            ("skew", "skewed"), ("bot", "bot failing")):
            names = [pi.name for pi in pis if kind in pi.found]
            if names:
                parts.append(f"{len(names)} {label}: {_names(names)}")
        if self.unknown:
            parts.append(f"{len(self.unknown)} unknown: {_names([pi.name for pi in self.unknown])}")
        return ", ".join(parts)


def _names(names: list[str], most: int = 5) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def shelf_of(name: str) -> str:
    """skia-rpi2-rack1-shelf2 for skia-rpi2-rack1-shelf2-017: Skia names Pis <shelf>-<NNN>."""
    m = _SHELF.match(name)
    return m.group(1) if m else name


def _time(text: Optional[str]) -> Optional[datetime]:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _node(pi: Pi, node: dict, now: datetime) -> None:
    """Fill in what the Node says."""
    meta, spec, status = node.get("metadata", {}), node.get("spec", {}), node.get("status", {})
    labels = meta.get("labels") or {}
    ready = next((c for c in status.get("conditions") or () if c.get("type") == "Ready"), {})
    pi.ready = ready.get("status") == "True"
    pi.presence = "ready" if pi.ready else "notReady"
    beat = _time(ready.get("lastHeartbeatTime"))
    pi.heartbeat = max(0.0, (now - beat).total_seconds()) if beat else None
    pi.version = (status.get("nodeInfo") or {}).get("kubeletVersion")
    pi.maintenance = labels.get(kube.MAINTENANCE_LABEL)
    if not spec.get("unschedulable"):
        pi.observed = "active"
    else:
        pi.observed = "drained" if labels.get(kube.STATE_LABEL) == "drained" else "cordoned"


def _bot(pod: dict) -> Bot:
    statuses = (pod.get("status") or {}).get("containerStatuses") or ()
    return Bot(pod=pod["metadata"]["name"], phase=(pod.get("status") or {}).get("phase", "Unknown"),
               restarts=sum(int(s.get("restartCount", 0)) for s in statuses),
               crash_looping=any(((s.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
                                 for s in statuses))


def _release(version: Optional[str]) -> tuple[int, ...]:
    """v1.31.6+k3s1 -> (1, 31, 6, 1), for ordering k3s releases."""
    return tuple(int(n) for n in re.findall(r"\d+", version or ""))


def _problems(pi: Pi, k3s_version: str, bots_expected: bool, rolling: bool = False) -> None:
    """What differs from the code. A Pi its upgrade has in hand (the maintenance label) is cordoned,
    restarting and between versions on purpose; while any Pi is, the others still on an older
    release are queued for the roll. Neither is drift: the roll (pulumi up) is what fixes them,
    and a halted roll leaves its Pi with the label and the halt file (README: k3s upgrades)."""
    if pi.presence == "missing":
        pi.found["missing"] = "not in the cluster"
        return
    if pi.maintenance:
        return
    if pi.presence == "notReady":
        pi.found["notReady"] = "NotReady"
    if pi.configured and pi.observed != pi.configured:
        pi.found["state"] = f"is {pi.observed}, config says {pi.configured}"
    if pi.version != k3s_version:
        if rolling and pi.configured is not None and _release(pi.version) < _release(k3s_version):
            pi.queued = True
        else:
            pi.found["skew"] = f"runs {pi.version}, config pins {k3s_version}"
    if bots_expected and pi.configured == "active" and pi.presence == "ready":
        if pi.bot is None:
            pi.found["bot"] = "no swarming bot"
        elif pi.bot.crash_looping:
            pi.found["bot"] = f"bot crash-looping ({pi.bot.restarts} restarts)"
        elif pi.bot.phase != "Running":
            pi.found["bot"] = f"bot {pi.bot.phase}"


def compute(rack: Settings, nodes: dict, pods: Optional[dict], now: datetime) -> Status:
    """The rack's status from the Node list and the swarming pod list (the API's JSON)
    (None when swarming is off)."""
    by_name = {n["metadata"]["name"]: n for n in nodes.get("items") or ()}
    bots = {}
    for pod in (pods or {}).get("items") or ():
        where = (pod.get("spec") or {}).get("nodeName")
        if where and not (pod.get("metadata") or {}).get("deletionTimestamp"):
            bots[where] = _bot(pod)
    bots_expected = pods is not None
    rolling = any(kube.MAINTENANCE_LABEL in (n["metadata"].get("labels") or {}) for n in by_name.values())

    def one(name: str, address: Optional[str], configured: Optional[str]) -> Pi:
        pi = Pi(name=name, presence="missing", address=address, configured=configured)
        if name in by_name:
            _node(pi, by_name[name], now)
            pi.bot = bots.get(name)
        return pi

    shelves: dict[str, list[Pi]] = {}
    for declared in rack.rpis:
        pi = one(declared.name, declared.address, declared.state)
        _problems(pi, rack.k3s_version, bots_expected, rolling)
        shelves.setdefault(shelf_of(declared.name), []).append(pi)
    jumphost = one(rack.jumphost.name, rack.jumphost.address, None)
    _problems(jumphost, rack.k3s_version, bots_expected=False)
    unknown = []
    for name in sorted(set(by_name) - set(rack.node_names)):
        pi = one(name, None, None)
        pi.presence = "unknown"
        pi.found["unknown"] = "not in the stack's config"
        if not pi.ready:
            pi.found["notReady"] = "NotReady"
        unknown.append(pi)
    return Status(stack=rack.rack, k3s_version=rack.k3s_version, read_at=now, shelves=list(shelves.items()),
                  unknown=unknown, jumphost=jumphost)


# --- reading the cluster ----------------------------------------------------------------------

def read_cluster(stack: str, kubeconfig: Optional[str], swarming: bool) -> tuple[dict, Optional[dict]]:
    """(nodes, pods) as kubectl returns them, read-only, from the stack's own cluster."""
    checked = kubeconfigs.for_rack(stack, kubeconfig, missing=f"run inside `rackctl attach {stack} -- ...`, or pass "
                                   f"--kubeconfig (e.g. one from `rackctl observer {stack}`)",
                                   refusing=f"hold {stack}'s config against another rack")
    # The API server's own JSON (--raw): kubectl's `-o json` decodes and re-encodes every object,
    # about a second per read on a 1000-Pi rack; the raw list is the same data in a fifth of that.
    reads: list[tuple[str, ...]] = [("get", "--raw", "/api/v1/nodes", f"--request-timeout={REQUEST_TIMEOUT}")]
    if swarming:
        reads.append(("get", "--raw", f"/api/v1/namespaces/{SWARMING_NAMESPACE}/pods",
                      f"--request-timeout={REQUEST_TIMEOUT}"))
    # Both at once.
    with ThreadPoolExecutor(len(reads)) as pool:
        texts = list(pool.map(lambda args: kubeconfigs.kubectl(checked, *args), reads))
    try:
        nodes = json.loads(texts[0])
        pods = json.loads(texts[1]) if swarming else None
    except json.JSONDecodeError:
        raise StatusError("kubectl returned something that is not JSON") from None
    return nodes, pods


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)
