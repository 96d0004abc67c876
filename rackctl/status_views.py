"""The views of `rackctl status`: text (one block per shelf, one cell per Pi), JSON (stable,
`format: 1`, documented in the README) and one self-contained HTML page (a grid per shelf, no
external assets, no JavaScript)."""

from __future__ import annotations

import html
import json
from typing import Optional

from rackctl.status import Pi, Status, shelf_of

JSON_FORMAT = 1
# Marks a page rackctl status wrote, so that --out replaces only such a page.
GENERATOR = '<meta name="generator" content="rackctl status">'
PER_ROW = 8
COLOURS = {"ok": "32", "out": "33", "problem": "31", "unknown": "35"}
LEGEND = (("ok", "Ready and as configured"), ("out", "cordoned or drained as configured, upgrading, or queued for the upgrade"),
          ("problem", "missing, NotReady, not as configured, skewed, or its bot failing"),
          ("unknown", "in the cluster, not in the stack's config"))


def age(seconds: Optional[float]) -> str:
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def details(pi: Pi) -> str:
    """Everything known of one Pi, in one line."""
    if pi.presence == "missing":
        return "missing: in the config, not in the cluster"
    said = list(pi.problems)
    if pi.configured in ("cordoned", "drained") and pi.observed == pi.configured:
        said.append(f"{pi.configured} as configured")
    if pi.maintenance:
        said.append(f"maintenance: {pi.maintenance}")
    said.append(f"{'Ready, ' if pi.ready else ''}heartbeat {age(pi.heartbeat)} ago")
    if "skew" not in pi.found:
        said.append(pi.version or "no version")
    if pi.bot:
        said.append(f"bot {pi.bot.phase}, {pi.bot.restarts} restarts")
    return "; ".join(said)


def blocks(status: Status) -> list[tuple[str, list[Pi]]]:
    """What a map draws, in order: each shelf, then the Nodes no stack file declares."""
    return status.shelves + ([("not in config", status.unknown)] if status.unknown else [])


def label(pi: Pi, shelf: str) -> Optional[str]:
    """A Pi's number on its shelf (017), or None when it is not named after the shelf."""
    return pi.name[len(shelf) + 1:] if pi.name.startswith(shelf + "-") else None


def jumphost_line(status: Status) -> str:
    jh = status.jumphost
    return f"jumphost {jh.name}: " + ("; ".join(jh.problems) if jh.presence == "missing" else details(jh))


# --- text -------------------------------------------------------------------------------------

def as_text(status: Status, colour: bool = False) -> str:
    def paint(pi: Pi, text: str) -> str:
        return f"\x1b[{COLOURS[pi.severity]}m{text}\x1b[0m" if colour else text

    pis = status.pis
    lines = [f"{status.stack}: {len(pis)} Pis, k3s {status.k3s_version}, read "
             f"{status.read_at.strftime('%Y-%m-%d %H:%M:%S UTC')}"]
    for shelf, members in blocks(status):
        lines += ["", shelf]
        for row in range(0, len(members), PER_ROW):
            cells = [paint(pi, f"{label(pi, shelf) or pi.name} {pi.cell:<10}") for pi in members[row:row + PER_ROW]]
            lines.append("  " + " ".join(cells).rstrip())
        lines += [f"    {label(pi, shelf) or pi.name}  {details(pi)}" for pi in members if pi.severity != "ok"]
    lines += ["", status.summary(), jumphost_line(status)]
    return "\n".join(lines) + "\n"


# --- JSON -------------------------------------------------------------------------------------

def _pi_json(pi: Pi) -> dict:
    return {
        "name": pi.name, "address": pi.address, "shelf": shelf_of(pi.name), "cell": pi.cell,
        "severity": pi.severity, "presence": pi.presence, "configuredState": pi.configured,
        "observedState": pi.observed, "maintenance": pi.maintenance, "version": pi.version,
        "heartbeatSeconds": None if pi.heartbeat is None else int(pi.heartbeat),
        "bot": None if pi.bot is None else {"pod": pi.bot.pod, "phase": pi.bot.phase, "restarts": pi.bot.restarts,
                                            "crashLooping": pi.bot.crash_looping},
        "problems": pi.problems,
    }


def as_json(status: Status) -> dict:
    pis = status.pis
    count = {s: sum(1 for pi in pis if pi.severity == s) for s in ("ok", "out", "problem")}
    return {
        "format": JSON_FORMAT, "stack": status.stack, "k3sVersion": status.k3s_version,
        "readAt": status.read_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "drift": status.drift, "summary": status.summary(),
        "counts": {"pis": len(pis), **count, "unknown": len(status.unknown)},
        "jumphost": _pi_json(status.jumphost),
        "shelves": [{"name": name, "pis": [_pi_json(pi) for pi in members]} for name, members in status.shelves],
        "unknown": [_pi_json(pi) for pi in status.unknown],
    }


def as_json_text(status: Status, compact: bool = False) -> str:
    return json.dumps(as_json(status), separators=(",", ":") if compact else None, indent=None if compact else 2) + "\n"


# --- HTML -------------------------------------------------------------------------------------

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px; color: #1f2328; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 14px; margin: 16px 0 4px; font-weight: 600; }
.meta, .summary { margin: 2px 0; } .summary { font-weight: 600; }
.legend { list-style: none; padding: 0; margin: 8px 0; display: flex; gap: 16px; flex-wrap: wrap; }
.legend span { display: inline-block; width: 14px; height: 14px; vertical-align: -2px; margin-right: 4px; }
.grid { display: flex; flex-wrap: wrap; gap: 6px; }
.pi { box-sizing: border-box; min-width: 64px; height: 44px; border-top: 6px solid; background: #f6f8fa;
      font: 12px/1.2 ui-monospace, monospace; text-align: center; padding: 4px 6px 0; }
.pi small { display: block; font-size: 10px; color: #59636e; }
.ok { border-color: #1a7f37; } .out { border-color: #bf8700; } .problem { border-color: #cf222e; }
.unknown { border-color: #8250df; }
.legend .ok { background: #1a7f37; } .legend .out { background: #bf8700; } .legend .problem { background: #cf222e; }
.legend .unknown { background: #8250df; }
"""


def _cell(pi: Pi, shelf: str) -> str:
    short = label(pi, shelf) or "-".join(pi.name.split("-")[-2:])  # a cell is narrow: shelf3-001
    title = f"{pi.name} ({pi.address or 'no address'})\n{details(pi)}"
    return (f'<div class="pi {pi.severity}" title="{html.escape(title)}">{html.escape(short)}'
            f'<small>{html.escape(pi.cell)}</small></div>')


def as_html(status: Status, refresh: Optional[int] = None) -> str:
    e = html.escape
    parts = ['<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">', GENERATOR,
             f"<title>{e(status.stack)}: rack status</title>"]
    if refresh:
        parts.append(f'<meta http-equiv="refresh" content="{int(refresh)}">')
    parts += [f"<style>{STYLE}</style>\n</head>\n<body>",
              f"<h1>{e(status.stack)}</h1>",
              f'<p class="meta">k3s {e(status.k3s_version)}, read {status.read_at.strftime("%Y-%m-%d %H:%M:%S UTC")}</p>',
              f'<p class="summary">{e(status.summary())}</p>',
              f'<p class="meta">{e(jumphost_line(status))}</p>',
              '<ul class="legend">' + "".join(f'<li><span class="{s}"></span>{e(what)}</li>' for s, what in LEGEND)
              + "</ul>"]
    for shelf, members in blocks(status):
        parts.append(f'<section><h2>{e(shelf)}</h2>\n<div class="grid">'
                     + "".join(_cell(pi, shelf) for pi in members) + "</div></section>")
    parts.append("</body>\n</html>\n")
    return "\n".join(parts)
