"""The rack's machines: the jumphost, and the Pis named one by one or by shelf. A Pi lives on the
rack LAN, and no two share a name or an address; a shelf's problems are told once, for the shelf."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Optional, Union

from pydantic import Discriminator, Tag, model_validator

from components.settings.base import Model, rules, shape
from components.settings.fields import (
    NAMESPACE, Host, HostKey, IPv4, Network, NodeName, NonNegative, Port, Positive, User, one_of)

PI_STATES = ("active", "cordoned", "drained")
# A rack LAN is private (RFC 1918) and no wider than this prefix: what the rack opens to its LAN
# (the Pis' root image over NFS, the metadata server's tokens, every Pi's sshd) must stay in it.
PRIVATE_NETWORKS = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
WIDEST_LAN = 16


class Jumphost(Model):
    name: NodeName
    address: Host
    lan_address: Optional[IPv4] = None
    lan_cidr: Optional[Network] = None
    user: User = "chrome-bot"
    port: Port = 22
    host_key: Optional[HostKey] = None

    @model_validator(mode="before")
    @classmethod
    def _lan_address_defaults_to_address(cls, data: Any) -> Any:
        if isinstance(data, dict) and "lanAddress" not in data:
            try:
                return {**data, "lanAddress": str(ipaddress.IPv4Address(data.get("address")))}
            except ValueError:
                pass
        return data

    @model_validator(mode="after")
    def _lan_address_is_known_and_on_the_lan(self) -> "Jumphost":
        if self.lan_address is None:
            raise rules([(("lanAddress",), f"missing; required when {NAMESPACE}:jumphost.address is a host name "
                                           f"({self.address!r}): the Pis join the API server at this IPv4 address")])
        if ipaddress.IPv4Address(self.lan_address) not in self.lan:
            raise rules([(("lanCidr",), f"{self.lan} does not contain the jumphost's LAN address {self.lan_address}")])
        key = "lanCidr" if self.lan_cidr else "lanAddress"
        if not any(self.lan.subnet_of(private) for private in PRIVATE_NETWORKS):
            raise rules([((key,), f"the rack LAN {self.lan} is not a private network (10.0.0.0/8, 172.16.0.0/12 or "
                                  f"192.168.0.0/16); the NFS export, the metadata server and every Pi are open to it")])
        if self.lan.prefixlen < WIDEST_LAN:
            raise rules([((key,), f"the rack LAN {self.lan} is wider than a rack (at most a /{WIDEST_LAN}, "
                                  f"{2 ** (32 - WIDEST_LAN) - 2} addresses); the NFS export, the metadata server and "
                                  f"every Pi are open to all of it")])
        return self

    @property
    def lan(self) -> ipaddress.IPv4Network:
        """The rack LAN: lanCidr, or the /24 of the jumphost's LAN address."""
        return ipaddress.IPv4Network(self.lan_cidr or f"{self.lan_address}/24", strict=False)


class PiOverride(Model):
    host_key: Optional[HostKey] = None
    rejoin: NonNegative = 0
    state: Annotated[str, one_of(*PI_STATES)] = "active"


class Rpi(PiOverride):
    name: NodeName
    address: IPv4


class Shelf(Model):
    shelf: NodeName
    count: Positive
    first_address: IPv4
    start: NonNegative = 1
    overrides: Annotated[dict[str, PiOverride], shape(dict, "an object of node name -> {hostKey, rejoin, state}")] = {}

    @model_validator(mode="after")
    def _fits_its_subnet_and_overrides_name_its_pis(self) -> "Shelf":
        first = ipaddress.IPv4Address(self.first_address)
        if int(first) + self.count - 1 > 0xFFFFFFFF or first.packed[:3] != (first + self.count - 1).packed[:3]:
            raise rules([(("count",), f"{self.count} Pis starting at {first} run past the end of its /24; "
                                      f"split the shelf or lower the count")])
        names = [pi.name for pi in self.pis()]
        if strangers := [n for n in self.overrides if n not in names]:
            raise rules([(("overrides", n), f"not a Pi of this shelf (it has {names[0]} .. {names[-1]})")
                         for n in strangers])
        return self

    def pis(self) -> list[Rpi]:
        first, plain = ipaddress.IPv4Address(self.first_address), PiOverride()
        return [Rpi.model_construct(name=name, address=str(first + i), **dict(self.overrides.get(name, plain)))
                for i, name in enumerate(f"{self.shelf}-{n:03d}" for n in range(self.start, self.start + self.count))]


def _not_a_pi_address(address: str, lan: ipaddress.IPv4Network) -> Optional[str]:
    ip = ipaddress.IPv4Address(address)
    if not ip.is_private:
        return f"{ip} is a public address; Pis live on the rack's private LAN ({lan})"
    if ip not in lan:
        return f"{ip} is outside the rack LAN {lan} ({NAMESPACE}:jumphost.lanCidr)"
    if ip in (lan.network_address, lan.broadcast_address):
        return f"{ip} is the {'network' if ip == lan.network_address else 'broadcast'} address of the rack LAN {lan}"
    return None


def _first_per_place(problems: list) -> list:
    """One problem per place (a shelf's first Pi off the LAN says it for the shelf): `problems` are
    (place, where, message), and one whose place is None is always kept."""
    seen, out = set(), []
    for place, where, message in problems:
        if place is None or place not in seen:
            seen.add(place)
            out.append((where, message))
    return out


PiEntry = Annotated[Union[Annotated[Rpi, Tag("<pi>")], Annotated[Shelf, Tag("<shelf>")]],
                    Discriminator(lambda v: "<shelf>" if isinstance(v, dict) and "shelf" in v else "<pi>")]


def expand(entries: tuple, jumphost: Optional[Jumphost]) -> tuple[Rpi, ...]:
    """Every Pi of `skolo:rpis`, shelves expanded, in rack order; `jumphost` None when it is broken."""
    if not entries:  # dangerous, never silent: every Pi the rack has would be retired
        raise rules([((), "is empty, which would retire every Pi of the rack (each drained, its k3s removed, its "
                          "Node deleted); list the Pis, or to take the whole rack down run: pulumi destroy -s STACK")])
    located = []  # (the keys that set its name and address, entry index, Pi), in rack order
    for i, entry in enumerate(entries):
        if isinstance(entry, Shelf):
            located += [({"name": f"shelf ({pi.name})", "address": f"firstAddress ({pi.name})"}, i, pi)
                        for pi in entry.pis()]
        else:
            located.append(({"name": "name", "address": "address"}, i, entry))
    problems = []
    for attr in ("name", "address"):
        seen: dict[str, str] = {}
        for keys, i, pi in located:
            if (value := getattr(pi, attr)) in seen:
                problems.append(((i, attr), (i, keys[attr]), f"{attr} {value!r} is already used by {seen[value]}; "
                                                             f"every Pi needs its own {attr}"))
            seen.setdefault(value, f"{NAMESPACE}:rpis[{i}].{keys[attr]}")
    for keys, i, pi in located:
        if jumphost and (pi.name == jumphost.name or pi.address == jumphost.lan_address):
            what = "name" if pi.name == jumphost.name else "address"
            problems.append((None, (), f"{pi.name} has the same {what} as {NAMESPACE}:jumphost"))
        elif jumphost and (problem := _not_a_pi_address(pi.address, jumphost.lan)):
            problems.append(((i, "address"), (i, keys["address"]), problem))
        if len(pi.name) > 63:
            problems.append(((i, "name"), (i, keys["name"]), f"{pi.name!r} has {len(pi.name)} characters; a node name "
                                                             f"is also the Pi's hostname, which may have at most 63"))
    if problems:
        raise rules(_first_per_place(problems))
    return tuple(pi for _, _, pi in located)
