"""Benchmark (not a test): validate the settings of a 1000-Pi rack, as `pulumi up` does first.

    .venv/bin/python benchmarks/settings_load.py [PIS]

Prints the best and median time of several parses. The goal (issue: settings on pydantic) is
under 0.3 s on a 2-core machine."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components import settings  # noqa: E402
from tests.conftest import PLANTED, stack_raw  # noqa: E402


def fleet(pis: int) -> dict:
    """rack1's config with `pis` Pis on shelves of 40, one /24 each in a /16 rack LAN."""
    raw = stack_raw("rack1")
    raw["rpis"] = [{"shelf": f"skia-rpi2-rack1-shelf{s + 1}", "count": min(40, pis - s * 40),
                    "firstAddress": f"10.0.{s + 1}.10"} for s in range((pis + 39) // 40)]
    raw["jumphost"] = {"name": "skolo-rack1-jumphost", "address": "10.0.0.8", "lanCidr": "10.0.0.0/16"}
    raw["services"] = {"powerCycle": {"enabled": False}, "routerBackup": {"enabled": False},
                       "nfs": {"enabled": False}}
    return raw


def main() -> None:
    pis = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    raw = fleet(pis)
    times = []
    for _ in range(7):
        start = time.perf_counter()
        parsed = settings.parse("rack1", raw, PLANTED)
        times.append(time.perf_counter() - start)
    assert len(parsed.rpis) == pis
    print(f"settings of a {pis}-Pi rack: best {min(times) * 1000:.1f} ms, median {statistics.median(times) * 1000:.1f} ms "
          f"(goal: under 300 ms)")


if __name__ == "__main__":
    main()
