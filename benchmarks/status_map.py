"""Benchmark (not a test): `rackctl status` of a 1000-Pi rack from its kubectl documents.

    .venv/bin/python benchmarks/status_map.py [PIS]

Builds the documents kubectl would return for the rack (tests/cluster_docs.py: every Pi Ready,
one bot each, a few of them off), then times holding them against the config and drawing the
text, JSON and HTML views. The goal (issue: rackctl status) is under 1 s here."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from components import settings  # noqa: E402
from rackctl import status, status_views  # noqa: E402
from settings_load import fleet as fleet_config  # noqa: E402
from tests import cluster_docs as docs  # noqa: E402
from tests.conftest import PLANTED  # noqa: E402


def fleet(pis: int):
    """(settings, nodes, pods) of a `pis`-Pi rack where every 50th Pi is missing and every 70th
    bot crash-loops."""
    rack = settings.parse("rack1", fleet_config(pis), PLANTED)
    specs = [docs.NodeSpec(rack.jumphost.name, rack.jumphost.address, rack.k3s_version, server=True)]
    specs += [docs.NodeSpec(pi.name, pi.address, rack.k3s_version) for i, pi in enumerate(rack.rpis) if i % 50 != 49]
    bots = [docs.BotSpec(s.name, restarts=9 if i % 70 == 0 else 0, crash_looping=i % 70 == 0)
            for i, s in enumerate(specs[1:])]
    return (rack, docs.listing([docs.node(s) for s in specs]),
            docs.listing([docs.bot_pod(b, rack.images.swarming) for b in bots]))


def main() -> None:
    pis = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    rack, nodes, pods = fleet(pis)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        st = status.compute(rack, nodes, pods, docs.NOW)
        status_views.as_text(st), status_views.as_json_text(st), status_views.as_html(st)
        times.append(time.perf_counter() - start)
    print(f"status of a {pis}-Pi rack ({st.summary().split(',')[0]}): best {min(times) * 1000:.0f} ms, "
          f"median {statistics.median(times) * 1000:.0f} ms, text + JSON + HTML (goal: under 1 s)")


if __name__ == "__main__":
    main()
