"""Skia's programs as Skia built them: for each of Skia's images a rack runs, the Go program in it,
what the container must run, and the flags that program defines, read from google/skia-buildbot.

A Go program exits 2 on a flag it does not define, so every flag a container gets is checked
against this table: the ones the components pass (tests) and the ones a stack adds by hand
(settings). Facts, with their source; the k3s-era code is at commit 99922d5a94^ (2021-09-10,
"Remove the last vestiges of k3s"), after which metadata, podwatcher and rpi-swarming-client
were no longer built. A flag is listed only if every image of the stretch defines it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Optional

K3S_ERA_END = date(2021, 9, 10)


@dataclass(frozen=True)
class Program:
    image: str
    """Repository name under gcr.io/skia-public."""
    program: str
    """The Go program the image runs."""
    source: str
    """Its main.go in google/skia-buildbot, and the commits read."""
    flags: frozenset[str]
    """Every flag the program defines, in every image of `built`."""
    command: tuple[str, ...] = ()
    """What the container must run; () keeps the image's ENTRYPOINT."""
    managed: frozenset[str] = frozenset()
    """Flags the rack's component sets itself (a stack may not add them again)."""
    required: frozenset[str] = frozenset()
    """Flags a rack must pass (the program dies or idles without them)."""
    built: tuple[date, Optional[date]] = (date(2020, 1, 1), None)
    """First and last image dates this contract holds for (None: still built)."""
    window: str = ""
    """Why `built` ends where it does, when the image (not the flags) sets the end."""

    def problems(self, args: tuple[str, ...]) -> list[str]:
        """What is wrong with `args` for this program: undefined flags, or flags not as --name[=value]."""
        out = []
        for arg in args:
            name = re.match(r"^--([a-z0-9_]+)(=|$)", arg)
            if not name:
                out.append(f"{arg!r} is not a flag as --name or --name=value (Go's flag package stops at the first "
                           f"non-flag, silently ignoring the rest)")
            elif name.group(1) not in self.flags:
                out.append(f"--{name.group(1)} is not a flag of {self.program} ({self.source}); it defines: "
                           + ", ".join(f"--{f}" for f in sorted(self.flags)))
            elif problem := _value_problem(name.group(1), arg.split("=", 1)[1] if "=" in arg else None):
                out.append(problem)
        return out


# The flags of Skia's programs that are not strings, by type (flag.Bool and flag.Duration in their
# main.go files). Go's flag package exits 2 on a value it cannot parse.
BOOL_FLAGS = frozenset({"local", "simulate", "start_swarming", "start_switchboard"})
DURATION_FLAGS = frozenset({"period"})
_GO_BOOLS = ("1", "0", "t", "f", "T", "F", "true", "false", "TRUE", "FALSE", "True", "False")  # strconv.ParseBool
_GO_DURATION = re.compile(r"^[-+]?(0|([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h))+$")  # time.ParseDuration


def _value_problem(flag: str, value: Optional[str]) -> Optional[str]:
    if flag in BOOL_FLAGS and value is not None and value not in _GO_BOOLS:
        return f"--{flag} is a boolean flag: give --{flag}, --{flag}=true or --{flag}=false, not {value!r}"
    if flag in DURATION_FLAGS and (value is None or not _GO_DURATION.match(value)):
        return f"--{flag} takes a Go duration like 15s, 2m or 1h30m, got {value!r}"
    return None


def flag_names(args: tuple[str, ...]) -> set[str]:
    return {a[2:].split("=", 1)[0] for a in args if a.startswith("--")}


METADATA = Program(
    "metadata", "metadata", "sk8s/go/metadata/main.go (2020-05-05 .. 99922d5a94^)",
    frozenset({"local", "port", "prom_port"}), managed=frozenset({"port", "prom_port"}),
    built=(date(2020, 5, 5), K3S_ERA_END))

# ENTRYPOINT alert-to-pubsub, CMD --prom_port=:20000 --port=:8000: args replace the CMD. The topic
# is fixed (promtheus-alerts, go/alerts/alerts.go); --local went away in 2022-07.
ALERT_TO_PUBSUB = Program(
    "alert-to-pubsub", "alert-to-pubsub", "am/go/alert-to-pubsub/main.go (99922d5a94^ .. 2026-08)",
    frozenset({"location", "period", "port", "project", "prom_port", "simulate"}),
    managed=frozenset({"location", "port", "project", "prom_port"}))
ALERT_TO_PUBSUB_TOPIC = "promtheus-alerts"  # sic, go/alerts/alerts.go

# The k3s-era in-cluster power cycler (power-cycle-daemon only forwarded to power.skia.org, never
# read the JSON5, and no image of it was ever built). --config is the machine server instance
# config the image ships; --powercycle_config the JSON5, fatal when empty.
# The image ships --config's file (prod.json) only as long as its release script could copy it:
# from 01bc5f9247 (2021-06-30) machine/configs moved and the script's `cp ../machine/configs/*`
# fails under set -e (sk8s/images/podwatcher/release:18), so no clean image was built after
# 2021-06-29, and one without the file dies at start (sk8s/go/podwatcher/main.go:51-56).
PODWATCHER_LAST_WITH_CONFIG = date(2021, 6, 29)
PODWATCHER = Program(
    "podwatcher", "podwatcher", "sk8s/go/podwatcher/main.go (a7a36bfa39 2020-05-15 .. 99922d5a94^)",
    frozenset({"config", "local", "powercycle_config", "prom_port"}),
    managed=frozenset({"config", "powercycle_config", "prom_port"}), required=frozenset({"config", "powercycle_config"}),
    built=(date(2020, 5, 15), PODWATCHER_LAST_WITH_CONFIG),
    window="no later image ships --config's /usr/local/share/podwatcher/prod.json (sk8s/images/podwatcher/release "
           "could not copy it from 01bc5f9247, 2021-06-30), and podwatcher exits without it")
PODWATCHER_INSTANCE_CONFIG = "/usr/local/share/podwatcher/prod.json"

_BOT_FLAGS = frozenset({"config", "local", "metadata_url", "port", "prom_port", "python_exe", "start_swarming",
                        "swarming_bot_zip"})
_BOT_REQUIRED = frozenset({"start_swarming", "metadata_url", "config", "python_exe"})
_BOT_MANAGED = _BOT_REQUIRED | {"port", "prom_port"}


@dataclass(frozen=True)
class SwarmingEra:
    program: Program
    config: str
    """--config: a file path the image ships until 2021-06-29, an embedded name after."""


# rpi-swarming-client has a CMD and no ENTRYPOINT (sk8s/images/rpi-swarming-client/Dockerfile), so
# a pod that sets args without command asks the runtime to exec the first arg. Keyed by the date
# of the era's first image.
SWARMING_ERAS = {
    "2020-04-21": SwarmingEra(Program(
        "rpi-swarming-client", "bot_config", "sk8s/go/bot_config/main.go (598d42fd41 .. c034719775^)", _BOT_FLAGS,
        ("/usr/bin/bot_config",), _BOT_MANAGED, _BOT_REQUIRED, (date(2020, 4, 21), date(2021, 6, 15))),
        "/usr/local/share/rpi-swarming-client/prod.json"),
    "2021-06-16": SwarmingEra(Program(
        "rpi-swarming-client", "test_machine_monitor",
        "sk8s/go/test_machine_monitor/main.go (c034719775 .. 01bc5f9247^)", _BOT_FLAGS,
        ("/usr/bin/test_machine_monitor",), _BOT_MANAGED, _BOT_REQUIRED, (date(2021, 6, 16), date(2021, 6, 29))),
        "/usr/local/share/rpi-swarming-client/prod.json"),
    "2021-06-30": SwarmingEra(Program(
        "rpi-swarming-client", "test_machine_monitor",
        "machine/go/test_machine_monitor/main.go (01bc5f9247 .. 99922d5a94^)", _BOT_FLAGS | {"username"},
        ("/usr/bin/test_machine_monitor",), _BOT_MANAGED, _BOT_REQUIRED, (date(2021, 6, 30), K3S_ERA_END)),
        "prod.json"),
}
NEWEST_ERA = max(SWARMING_ERAS)

# What interpreter the image ships: FROM raspbian/stretch with python2.7 only until 3f55750f2c
# (2021-07-12, "Move rpi image to debian testing"), then arm32v7/debian:testing-slim with python3
# (sk8s/images/rpi-swarming-client/Dockerfile). The boundary falls inside the 2021-06-30 era.
SWARMING_PYTHON3_FROM = date(2021, 7, 12)


def swarming_python(image: str) -> str:
    """--python_exe for an rpi-swarming-client image: the interpreter that image has. An image
    without a dated tag (a bare digest) is taken to be a current one."""
    built = tag_date(image)
    return "/usr/bin/python2.7" if built and built < SWARMING_PYTHON3_FROM else "/usr/bin/python3"


def tag_date(image: str) -> Optional[date]:
    """The build date in a Skia tag (gcr.io/skia-public/app:2021-08-27T14_37_01Z-user-abc1234-clean)."""
    found = re.search(r":(\d{4})-(\d{2})-(\d{2})T\d{2}_\d{2}_\d{2}Z-", image)
    return date(*map(int, found.groups())) if found else None


def image_problem(program: Program, image: str) -> Optional[str]:
    """Why `image` is not one this contract holds for, or None."""
    repository = image.split("@")[0].rsplit(":", 1)[0] if ":" in image.split("/")[-1] else image.split("@")[0]
    if repository.rsplit("/", 1)[-1] != program.image:
        return (f"this service runs {program.program} from Skia's {program.image} image "
                f"(gcr.io/skia-public/{program.image}), got {image!r}")
    built, (first, last) = tag_date(image), program.built
    if built and not _within(built, program.built):
        stretch = f"{first} .. {last}" if last else f"{first} and later"
        if program.window and last and built > last:
            return f"{image!r} was built on {built}, after {last}: {program.window}"
        return (f"{image!r} was built on {built}; the flags this rack passes to {program.program} are known for "
                f"images of {stretch} ({program.source})")
    return None


def swarming_era_for(image: str) -> Optional[str]:
    """The era an image's tag date falls in, or None when the tag has no date."""
    built = tag_date(image)
    return next((key for key, era in SWARMING_ERAS.items() if built and _within(built, era.program.built)), None)


def _within(built: date, window: tuple[date, Optional[date]]) -> bool:
    first, last = window
    return first <= built and (last is None or built <= last)
