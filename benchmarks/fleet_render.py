"""Benchmark (not a test): declare a 1000-Pi rack, as `pulumi up` and `rackctl render` do.

    .venv/bin/python benchmarks/fleet_render.py [PIS]

Prints, for a rack1 with PIS Pis (each with a pinned ed25519 host key, as a real rack has):
  - the wall time of `python -m rackctl render` (goal, issue "fleet scale": at most 15 s);
  - resources per Pi (goal: at most 3) and KiB of declared inputs per Pi (goal: at most 2);
  - the time to declare the program under the mocks against the SDK floor: a program that
    declares only the per-Pi resources (a component and one command each) with empty inputs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rackctl import program  # noqa: E402
from tests.conftest import PLANTED  # noqa: E402

FLOOR_PROGRAM = '''
import pulumi, pulumi_command as command
conn = command.remote.ConnectionArgs(host="10.0.0.8", user="chrome-bot")
for i in range({pis}):
    parent = pulumi.ComponentResource("skolo:rack:RpiAgent", f"pi-{{i}}", None)
    command.remote.Command(f"pi-{{i}}-node", connection=conn, create="true",
                           opts=pulumi.ResourceOptions(parent=parent))
'''


def host_key(i: int) -> str:
    """A well-formed ed25519 public key, distinct per Pi (the size a real one has)."""
    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + hashlib.sha256(str(i).encode()).digest()
    return "ssh-ed25519 " + base64.b64encode(blob).decode()


def fleet_stack(pis: int) -> dict:
    """rack1's stack file with `pis` Pis on shelves of 40 across a /16."""
    doc = yaml.safe_load((ROOT / "Pulumi.rack1.yaml").read_text())
    config = doc["config"]
    shelves = []
    for s in range((pis + 39) // 40):
        name = f"skia-rpi2-rack1-shelf{s + 1}"
        count = min(40, pis - s * 40)
        shelves.append({"shelf": name, "count": count, "firstAddress": f"10.0.{s + 1}.10",
                        "overrides": {f"{name}-{n:03d}": {"hostKey": host_key(s * 40 + n)} for n in range(1, count + 1)}})
    config["skolo:rpis"] = shelves
    config["skolo:jumphost"] = dict(config["skolo:jumphost"], address="10.0.0.8", lanAddress="10.0.0.8",
                                    lanCidr="10.0.0.0/16")
    services = config.setdefault("skolo:services", {})
    for name in ("powerCycle", "routerBackup", "nfs"):  # they name rack1's own devices and Pis
        services[name] = {"enabled": False}
    return doc


def main() -> None:
    pis = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        work = Path(tmp)
        (work / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
        (work / "Pulumi.fleet.yaml").write_text(yaml.safe_dump(fleet_stack(pis), sort_keys=False))

        start = time.perf_counter()
        render = subprocess.run([sys.executable, "-m", "rackctl", "--config-dir", str(work), "render", "fleet",
                                 "--out", str(work / "out")], cwd=ROOT, capture_output=True, text=True)
        render_seconds = time.perf_counter() - start
        if render.returncode != 0:
            sys.exit(f"render failed: {render.stderr}")

        start = time.perf_counter()
        run = program.run_stack("fleet", secrets=PLANTED, config_dir=work)
        program_seconds = time.perf_counter() - start

        floor_dir = work / "floor"
        floor_dir.mkdir()
        (floor_dir / "__main__.py").write_text(FLOOR_PROGRAM.format(pis=pis))
        start = time.perf_counter()
        floor = program.run_program("floor", {}, [], floor_dir)
        floor_seconds = time.perf_counter() - start

    names = {r.name for r in run.resources if r.type == "skolo:rack:RpiAgent"}
    per_pi = [r for r in run.resources if any(r.name == n or r.name.startswith(f"{n}-") for n in names)]
    kib = sum(len(json.dumps(r.inputs, sort_keys=True)) for r in per_pi) / 1024 / len(names)
    print(f"{pis} Pis, {len(run.resources)} resources ({len(per_pi) / len(names):.0f} per Pi, "
          f"{kib:.2f} KiB of inputs per Pi; goals: at most 3 and 2)")
    print(f"rackctl render: {render_seconds:.1f} s wall (goal: at most 15 s)")
    print(f"declare under the mocks: {program_seconds:.1f} s; SDK floor ({len(floor.resources)} resources, "
          f"empty inputs): {floor_seconds:.1f} s; ratio {program_seconds / floor_seconds:.2f}")


if __name__ == "__main__":
    main()
