"""STAND-IN for GitHub's REST API, as far as our tools call it: the issues calls `rackctl drift`
makes (list open issues by label, paginated; create; edit; comment). A real HTTP server that keeps
issues as GitHub does, records every request, and refuses one without the token.

In-process: `StandInGitHub(token)` (tests/test_drift.py). In a network namespace, as a script:
    python tests/standins/github_api.py HOST PORT TOKEN STATE_FILE
prints "listening" once it serves, and rewrites STATE_FILE (JSON: issues and requests) after each
request (tests/test_workflow_runs.py).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qs, urlsplit


class StandInGitHub(ThreadingHTTPServer):
    def __init__(self, token: str, address: tuple[str, int] = ("127.0.0.1", 0), state: Optional[Path] = None):
        super().__init__(address, Handler)
        self.token = token
        self.state = state
        self.issues: dict[int, dict] = {}
        self.requests: list[tuple[str, str, dict]] = []
        self.lock = threading.Lock()  # requests are served on threads of their own

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def save(self) -> None:
        """The state file, whole: written aside and renamed, so a reader never sees half of it, and
        before the answer goes out, so it holds every request a client has had answered."""
        if self.state is not None:
            aside = self.state.with_name(self.state.name + ".new")
            aside.write_text(json.dumps({"issues": self.issues, "requests": self.requests}))
            os.replace(aside, self.state)


class Handler(BaseHTTPRequestHandler):
    server: StandInGitHub

    def log_message(self, *args):  # quiet
        pass

    def _answer(self, code: int, doc) -> None:
        data = json.dumps(doc).encode()
        self.server.save()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        with self.server.lock:  # one request at a time, as the state and the file go together
            self._serve(method)

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        payload = json.loads(self.rfile.read(length)) if length else {}
        url = urlsplit(self.path)
        self.server.requests.append((method, url.path, payload))
        if self.headers.get("Authorization") != f"Bearer {self.server.token}":
            return self._answer(401, {"message": "Bad credentials"})
        parts = url.path.split("/")  # '', repos, owner, name, issues[, n[, comments]]
        issues = self.server.issues
        if method == "GET" and parts[4:] == ["issues"]:
            q = parse_qs(url.query)
            found = [i for i in issues.values() if i["state"] == q["state"][0] and q["labels"][0] in i["labels"]]
            size, page = int(q["per_page"][0]), int(q["page"][0])
            return self._answer(200, found[(page - 1) * size:page * size])
        if method == "POST" and parts[4:] == ["issues"]:
            number = len(issues) + 1
            issues[number] = {"number": number, "state": "open", "title": payload["title"], "body": payload["body"],
                              "labels": payload.get("labels", []), "comments": []}
            return self._answer(201, issues[number])
        number = int(parts[5])
        if method == "PATCH":
            issues[number].update({k: v for k, v in payload.items() if k in ("body", "state")})
            return self._answer(200, issues[number])
        if method == "POST" and parts[6:] == ["comments"]:
            issues[number]["comments"].append(payload["body"])
            return self._answer(201, {"body": payload["body"]})
        return self._answer(404, {"message": "Not Found"})

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PATCH(self):
        self._handle("PATCH")


if __name__ == "__main__":
    host, port, token, state = sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
    server = StandInGitHub(token, (host, port), state)
    server.save()
    print("listening", flush=True)
    server.serve_forever()
