"""`rackctl render STACK --out DIR`: what one stack would put on its rack, as files.

Writes every Kubernetes object the program declares as YAML under kubernetes/, every host
script (create and delete) under hosts/<host>/, and returns a summary for the terminal. Secret
values are never written: a Secret's keys are rendered with a placeholder value (so the files
still apply with `kubectl apply --dry-run=server`), a stdin that carries a secret is not shown.

The output directory is render's own: it is marked, and a render replaces only the files the
marker says the last one wrote. A directory that is not empty and not marked is refused, and
nothing is written outside it.
"""

from __future__ import annotations

import shlex
from collections import Counter, defaultdict
from pathlib import Path

import yaml

from components import hostscripts
from rackctl.program import Declared, Run

COMMAND_TYPE = "command:remote:Command"
K8S_PREFIX = "kubernetes:"
MARKER = ".rackctl-render"
PLACEHOLDER = "rackctl-render-placeholder: pulumi up sets this from the stack's secrets"
# A dockerconfigjson Secret must hold JSON with auths; the API server checks it.
DOCKERCONFIG_PLACEHOLDER = '{"auths": {}}'


class RenderError(Exception):
    pass


def _host_of(resource: Declared) -> str:
    connection = resource.inputs.get("connection") or {}
    host = connection.get("host", "unknown-host")
    return f"{host}-via-{connection['proxy']['host']}" if connection.get("proxy") else host


def component_of(run: Run, resource: Declared) -> str:
    """The nearest component (non-custom) ancestor's type and name, or 'stack'."""
    parent = resource.parent
    while parent:
        owner = next((r for r in run.resources if r.urn == parent), None)
        if owner is None:
            return "stack"
        if not owner.custom:
            return f"{owner.type.rsplit(':', 1)[-1]} {owner.name}"
        parent = owner.parent
    return "stack"


def _as_script(command: str) -> tuple[str, str]:
    """(folder, script) for a command: a host script as it is; a call into the Pis' bundle (in pis/)
    as its parameters, then the bundle script it runs (an equivalent script, for review)."""
    try:
        return "", hostscripts.unwrap(command).text
    except ValueError:
        where, script, params = hostscripts.unwrap_call(command)
        return "pis/", ("#!/bin/sh\n" f"# skolo bundle call: {script}.sh of {where} on the jumphost (see ../bundle/)\n"
                + "".join(f"export {k}={shlex.quote(v)}\n" for k, v in params.items())
                + f"export BUNDLE={where}\n# shellcheck source=/dev/null\n. \"$BUNDLE/{script}.sh\"\n")


def host_scripts(run: Run) -> dict[str, str]:
    """Relative path -> script text, for every create/delete command the program declares, and the
    files of the bundle the jumphost keeps for the Pis."""
    files = {}
    for r in run.of_type(COMMAND_TYPE):
        host = _host_of(r)
        for phase in ("create", "delete"):
            command = r.inputs.get(phase)
            if command:
                folder, text = _as_script(command)
                files[f"hosts/{host}/{folder}{r.name}{'' if phase == 'create' else '.delete'}.sh"] = text
        if "skolo-bundle-install" in (r.inputs.get("create") or ""):
            files.update({f"hosts/{host}/bundle/{name}": text
                          for name, text in hostscripts.unbundle(r.inputs["stdin"]).items()})
    return files


def _canonical(value):
    """Keys sorted at every level and whole numbers as ints: the engine hands inputs over in no
    fixed order, and a render must come out the same every time for `rackctl diff` to mean
    anything."""
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the engine's protobuf numbers are all floats; Kubernetes counts are ints
    return value


def kubernetes_objects(run: Run) -> dict[str, dict]:
    """Relative path -> manifest, for every Kubernetes object (not providers)."""
    files = {}
    for r in run.resources:
        if not r.type.startswith(K8S_PREFIX) or not r.custom:
            continue
        head = ("apiVersion", "kind", "metadata")
        manifest = {k: _canonical(r.inputs[k]) for k in head if k in r.inputs}
        for key in sorted(r.inputs):
            if key not in manifest:
                manifest[key] = _placeholders(r.inputs[key]) if key in r.secret_inputs else _canonical(r.inputs[key])
        meta = manifest.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        ns = meta.get("namespace", "_cluster")
        name = str(meta.get('name', r.name)).replace(':', '_')
        files[f"kubernetes/{ns}/{manifest.get('kind', r.type)}-{name}.yaml"] = manifest
    return files


def _placeholders(value: dict) -> dict:
    """A Secret's stringData with every value replaced: the keys show, the values never do."""
    return {k: DOCKERCONFIG_PLACEHOLDER if k == ".dockerconfigjson" else PLACEHOLDER for k in sorted(value)}


def images(run: Run) -> Counter:
    found: Counter = Counter()

    def walk(value):
        if isinstance(value, dict):
            for k, v in value.items():
                if k == "image" and isinstance(v, str):
                    found[v] += 1
                else:
                    walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for r in run.resources:
        if r.type.startswith(K8S_PREFIX):
            walk(r.inputs)
    return found


def _inside(out: Path, rel: str) -> Path:
    path = (out / rel).resolve()
    if out.resolve() not in path.parents:
        raise RenderError(f"{rel!r} would be written outside {out}; nothing was written")
    return path


def write(run: Run, out: Path) -> list[Path]:
    """Write the render into `out`, replacing only what the last render there wrote."""
    files = {rel: text for rel, text in host_scripts(run).items()}
    files.update({rel: yaml.safe_dump(m, sort_keys=False) for rel, m in kubernetes_objects(run).items()})
    paths = {rel: _inside(out, rel) for rel in sorted(files)}  # all checked before anything is touched
    marker = out / MARKER
    if out.exists() and not out.is_dir():
        raise RenderError(f"--out {out} is a file; give a directory")
    if out.exists() and not marker.exists() and any(out.iterdir()):
        raise RenderError(f"--out {out} is not empty and was not written by rackctl render (no {MARKER}); "
                          f"give an empty or new directory. Nothing was changed")
    if marker.exists():
        for rel in marker.read_text().splitlines()[1:]:
            old = _inside(out, rel)
            old.unlink(missing_ok=True)
            for parent in old.parents:  # the directories render made, once empty
                if parent == out.resolve() or any(parent.iterdir()):
                    break
                parent.rmdir()
    for rel, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[rel])
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text("# written by rackctl render; the next render replaces exactly these files\n"
                      + "".join(f"{rel}\n" for rel in paths))
    return list(paths.values())


def summary(run: Run, out: Path, written: list[Path]) -> str:
    by_component: dict[str, Counter] = defaultdict(Counter)
    for r in run.resources:
        if r.custom:
            by_component[component_of(run, r)][r.type] += 1
    kinds: dict[str, Counter] = defaultdict(Counter)
    for comp, counts in by_component.items():
        kinds[comp.split(" ", 1)[0]].update(counts)
    lines = [f"stack {run.stack}: {len(run.resources)} resources, {len(written)} files in {out}", "",
             f"{'component':<22} {'count':>5}  resources (each)"]
    for kind in sorted(kinds):
        count = sum(1 for c in by_component if c.split(" ", 1)[0] == kind)
        per = ", ".join(f"{n // count} {t.rsplit(':', 1)[-1]}" for t, n in sorted(kinds[kind].items()))
        lines.append(f"{kind:<22} {count:>5}  {per}")
    hosts = sorted({_host_of(r) for r in run.of_type(COMMAND_TYPE)})
    pis = sum(1 for path in written if path.parent.name == "pis" and not path.name.endswith(".delete.sh"))
    lines += ["", f"hosts: {len(hosts)} reached over SSH ({', '.join(hosts)}); {pis} Pis reached from the jumphost "
                  "by its bundle (hosts/*/pis/, hosts/*/bundle/)"]
    secret_stdin = sum(1 for r in run.of_type(COMMAND_TYPE) if "stdin" in r.secret_inputs)
    lines.append(f"secrets: {secret_stdin} host scripts get a secret on stdin (not shown); "
                 f"secret stack outputs: {', '.join(sorted(run.secret_outputs)) or 'none'}")
    secret_objects = sorted(f"{r.inputs['metadata']['namespace']}/{r.inputs['metadata']['name']}"
                            for r in run.of_type("kubernetes:core/v1:Secret"))
    lines.append(f"placeholders: every Secret's values ({', '.join(secret_objects) or 'none'}); stack secrets not "
                 f"in the stack file in the clear: {', '.join(run.placeholders) or 'none'}")
    found = images(run)
    lines.append("images:" + ("".join(f"\n  {i}" for i in sorted(found)) or " none declared"))
    return "\n".join(lines)
