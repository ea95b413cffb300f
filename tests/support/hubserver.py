"""A small Hugging Face Hub-compatible HTTP server for tests (stdlib http.server), and its `hub` fixture.

It speaks the part of the Hub API that the real `huggingface_hub` and `datasets` clients use to
create a dataset repo, commit files to it (inline or through the LFS batch protocol), tag it,
open pull requests and read it back. Every commit keeps a full snapshot, so clients that pin a
sha (datasets does) read exactly what was committed. Tokens and users are configured by the test.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml

REPO_PREFIXES = {"datasets": "dataset", "models": "model", "spaces": "space"}
LFS_SUFFIXES = (".parquet", ".arrow", ".bin", ".safetensors", ".gz", ".zst")


@dataclass(frozen=True)
class User:
    name: str
    write: bool = True
    orgs: tuple[str, ...] = ()

    def owns(self, namespace: str) -> bool:
        return namespace == self.name or namespace in self.orgs


@dataclass(frozen=True)
class Blob:
    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.data)}\n".encode()

    @property
    def git_oid(self) -> str:
        return git_hash(self.pointer if self.lfs else self.data)

    @property
    def etag(self) -> str:
        # The Hub's ETag is the git blob id for regular files and the sha256 for LFS files.
        return self.sha256 if self.lfs else self.git_oid


@dataclass
class Commit:
    sha: str
    message: str
    parent: str | None
    files: dict[str, Blob]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    prs: dict[int, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, revision: str) -> str | None:
        """A branch, tag, refs/pr/N or (prefix of a) commit sha -> the commit sha."""
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.tags:
            return self.tags[revision]
        match = re.fullmatch(r"refs/pr/(\d+)", revision)
        if match:
            return self.prs.get(int(match.group(1)))
        if re.fullmatch(r"[0-9a-f]{7,40}", revision):
            return next((sha for sha in self.commits if sha.startswith(revision)), None)
        return None

    def head(self, revision: str = "main") -> Commit | None:
        sha = self.resolve(revision)
        return self.commits[sha] if sha else None


def git_hash(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class HubState:
    """Everything the server knows: users, repos, LFS objects, and a log of requests."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tokens: dict[str, User] = {}
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, user name)
        self.lfs_threshold = 10 * 1024 * 1024
        self.commit_status: int | None = None  # set to e.g. 504 to make every commit fail like a gateway timeout
        self._counter = itertools.count(1)

    def add_token(self, token: str, user: str, *, write: bool = True, orgs: tuple[str, ...] = ()) -> None:
        self.tokens[token] = User(user, write, orgs)

    def repo(self, repo_type: str, repo_id: str) -> Repo | None:
        return self.repos.get((repo_type, repo_id))

    def writes(self) -> list[tuple[str, str, str | None]]:
        """Requests that could change something (everything but reads and YAML validation)."""
        return [r for r in self.requests if r[0] not in ("GET", "HEAD") and not r[1].endswith("/validate-yaml")]

    def new_commit(self, repo: Repo, parent: str | None, message: str, files: dict[str, Blob]) -> Commit:
        seed = f"{repo.repo_id}\0{parent}\0{message}\0{next(self._counter)}\0" + "".join(
            f"{path}:{blob.git_oid}" for path, blob in sorted(files.items())
        )
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), message, parent, dict(files))
        repo.commits[commit.sha] = commit
        return commit


class HubServer:
    """Runs the Hub on 127.0.0.1 (a free port) in a background thread."""

    def __init__(self) -> None:
        self.state = HubState()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self.state))
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> "HubServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler_for(state: HubState) -> type[BaseHTTPRequestHandler]:
    class Handler(_HubHandler):
        hub = state

    return Handler


class _HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: HubState

    def log_message(self, format: str, *args: object) -> None:  # quiet: pytest shows failures anyway
        pass

    # ------------------------------------------------------------------ plumbing

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self, method: str) -> None:
        # Read the body first, always: an unread body would corrupt the next request on this connection.
        self.body = self._read_body()
        url = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.segments = [unquote(part) for part in url.path.split("/")[1:]]
        self.user = self._authenticate()
        with self.hub.lock:
            self.hub.requests.append((method, url.path, self.user.name if self.user else None))
        try:
            if self._bad_token:
                raise HubError(401, "Invalid credentials in Authorization header")
            with self.hub.lock:
                self._route(method)
        except HubError as err:
            headers = {"X-Error-Code": err.code} if err.code else {}
            headers["X-Error-Message"] = err.message
            self._json(err.status, {"error": err.message}, headers)
        except Exception as exc:  # a bug in this server: answer, so the client's error names it
            self._json(500, {"error": f"test hub server bug: {exc!r}"})

    def _authenticate(self) -> User | None:
        header = self.headers.get("Authorization", "")
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else None
        self._bad_token = token is not None and token not in self.hub.tokens
        return self.hub.tokens.get(token) if token else None

    def _json(self, status: int, payload: object, headers: dict | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _send(self, status: int, body: bytes, headers: dict) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _payload(self) -> dict:
        try:
            return json.loads(self.body or b"{}")
        except json.JSONDecodeError:
            raise HubError(400, "request body is not JSON") from None

    # ------------------------------------------------------------------ routing

    def _route(self, method: str) -> None:
        s = self.segments
        if s[:1] == ["api"]:
            if method == "POST" and s[1:] == ["repos", "create"]:
                return self._create_repo()
            if method == "POST" and s[1:] == ["validate-yaml"]:
                return self._validate_yaml()
            if method == "GET" and s[1:] == ["whoami-v2"]:
                return self._whoami()
            if len(s) >= 4 and s[1] in REPO_PREFIXES:
                return self._repo_api(method, REPO_PREFIXES[s[1]], f"{s[2]}/{s[3]}", s[4:])
        if s[:1] == ["lfs-upload"] and method == "PUT":
            self.hub.lfs_objects[s[1]] = self.body
            return self._send(200, b"", {})
        if s[:1] == ["lfs-verify"] and method == "POST":
            oid = self._payload().get("oid")
            if oid not in self.hub.lfs_objects:
                raise HubError(404, f"LFS object {oid} was never uploaded")
            return self._json(200, {"success": True})
        # Dataset and space repos live under their prefix, model repos at the top: /OWNER/NAME/...
        kind, path = (REPO_PREFIXES[s[0]], s[1:]) if s and s[0] in REPO_PREFIXES else ("model", s)
        if len(path) >= 2:
            ns, name, *rest = path
            if name.endswith(".git") and rest == ["info", "lfs", "objects", "batch"] and method == "POST":
                return self._lfs_batch(kind, f"{ns}/{name[:-4]}")
            if rest[:1] == ["resolve"] and len(rest) >= 3 and method in ("GET", "HEAD"):
                return self._resolve(kind, f"{ns}/{name}", rest[1], "/".join(rest[2:]))
        raise HubError(404, f"no route for {method} {self.path}")

    def _repo_api(self, method: str, kind: str, repo_id: str, rest: list[str]) -> None:
        action = rest[0] if rest else None
        if method == "GET" and action is None:
            return self._repo_info(kind, repo_id, "main")
        if method == "GET" and action == "revision":
            return self._repo_info(kind, repo_id, rest[1])
        if method == "GET" and action == "tree":
            return self._tree(kind, repo_id, rest[1], "/".join(rest[2:]))
        if method == "GET" and action == "refs":
            return self._refs(kind, repo_id)
        if method == "POST" and action == "paths-info":
            return self._paths_info(kind, repo_id, rest[1])
        if method == "POST" and action == "preupload":
            return self._preupload(kind, repo_id, rest[1])
        if method == "POST" and action == "commit":
            return self._commit(kind, repo_id, rest[1])
        if method == "POST" and action == "branch":
            return self._create_branch(kind, repo_id, rest[1])
        if method == "POST" and action == "tag":
            return self._create_tag(kind, repo_id, rest[1])
        if method == "POST" and action == "discussions":
            return self._create_pr(kind, repo_id)
        if method == "GET" and action == "discussions" and len(rest) == 2:
            return self._pr_details(kind, repo_id, int(rest[1]))
        raise HubError(404, f"no route for {method} {self.path}")

    # ------------------------------------------------------------------ access

    def _readable(self, kind: str, repo_id: str) -> Repo:
        repo = self.hub.repo(kind, repo_id)
        if repo is None or (repo.private and not (self.user and self.user.owns(repo_id.split("/")[0]))):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _writable(self, kind: str, repo_id: str) -> Repo:
        if self.user is None:
            raise HubError(401, "You must be authenticated to write to a repository")
        repo = self._readable(kind, repo_id)
        if not (self.user.write and self.user.owns(repo_id.split("/")[0])):
            raise HubError(403, f"You don't have the rights to write to {repo_id} (read-only token or not a member)")
        return repo

    def _commit_at(self, repo: Repo, revision: str) -> Commit:
        sha = repo.resolve(revision)
        if sha is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo.commits[sha]

    # ------------------------------------------------------------------ endpoints

    def _whoami(self) -> None:
        if self.user is None:
            raise HubError(401, "You must be authenticated")
        role = "write" if self.user.write else "read"
        orgs = [{"name": org} for org in self.user.orgs]
        self._json(200, {"type": "user", "name": self.user.name, "orgs": orgs, "auth": {"accessToken": {"role": role}}})

    def _create_repo(self) -> None:
        payload = self._payload()
        kind = payload.get("type") or "model"
        namespace = payload.get("organization") or (self.user.name if self.user else None)
        repo_id = f"{namespace}/{payload.get('name')}"
        prefix = "" if kind == "model" else f"{kind}s/"
        url = f"http://{self.headers.get('Host')}/{prefix}{repo_id}"
        if self.user is None:
            raise HubError(401, "You must be authenticated to create a repository")
        if not (self.user.write and self.user.owns(namespace)):
            raise HubError(403, f"You don't have the rights to create a {kind} under the namespace '{namespace}'")
        if self.hub.repo(kind, repo_id):
            return self._json(409, {"error": f"You already created this {kind} repo", "url": url})
        private = payload.get("private", payload.get("visibility") == "private")
        repo = Repo(kind, repo_id, bool(private))
        self.hub.repos[(kind, repo_id)] = repo
        initial = self.hub.new_commit(
            repo,
            None,
            "initial commit",
            {".gitattributes": Blob(b"*.parquet filter=lfs diff=lfs merge=lfs -text\n", False)},
        )
        repo.branches["main"] = initial.sha
        self._json(200, {"url": url, "name": repo_id})

    def _validate_yaml(self) -> None:
        content = self._payload().get("content", "")
        match = re.match(r"^---\n(.*?)\n---\n", content, re.DOTALL)
        try:
            metadata = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as exc:
            return self._json(400, {"errors": [{"message": f"invalid YAML: {exc}"}], "warnings": []})
        if metadata is not None and not isinstance(metadata, dict):
            return self._json(400, {"errors": [{"message": "metadata must be a mapping"}], "warnings": []})
        self._json(200, {"errors": [], "warnings": []})

    def _repo_info(self, kind: str, repo_id: str, revision: str) -> None:
        repo = self._readable(kind, repo_id)
        commit = self._commit_at(repo, revision)
        self._json(
            200,
            {
                "id": repo_id,
                "author": repo_id.split("/")[0],
                "sha": commit.sha,
                "private": repo.private,
                "lastModified": "2024-01-15T10:30:00.000Z",
                "tags": [],
                "siblings": [{"rfilename": path} for path in sorted(commit.files)],
            },
        )

    def _entry(self, path: str, blob: Blob) -> dict:
        entry = {"type": "file", "path": path, "size": len(blob.data), "oid": blob.git_oid}
        if blob.lfs:
            entry["lfs"] = {"oid": blob.sha256, "size": len(blob.data), "pointerSize": len(blob.pointer)}
        return entry

    def _folders(self, files: dict[str, Blob]) -> set[str]:
        return {"/".join(path.split("/")[:i]) for path in files for i in range(1, path.count("/") + 1)}

    def _tree(self, kind: str, repo_id: str, revision: str, folder: str) -> None:
        commit = self._commit_at(self._readable(kind, repo_id), revision)
        folders = self._folders(commit.files)
        if folder and folder not in folders:
            raise HubError(404, f"{folder} does not exist at {revision}", "EntryNotFound")
        recursive = self.query.get("recursive", "").lower() in ("1", "true")
        prefix = f"{folder}/" if folder else ""

        def wanted(path: str) -> bool:
            return path.startswith(prefix) and (recursive or "/" not in path[len(prefix) :])

        entries = [
            {"type": "directory", "path": p, "oid": git_hash(p.encode()), "size": 0}
            for p in sorted(folders)
            if wanted(p)
        ]
        entries += [self._entry(p, b) for p, b in sorted(commit.files.items()) if wanted(p)]
        self._json(200, entries)

    def _paths_info(self, kind: str, repo_id: str, revision: str) -> None:
        commit = self._commit_at(self._readable(kind, repo_id), revision)
        form = parse_qs(self.body.decode())
        folders = self._folders(commit.files)
        entries = []
        for path in form.get("paths", []):
            if path in commit.files:
                entries.append(self._entry(path, commit.files[path]))
            elif path in folders:
                entries.append({"type": "directory", "path": path, "oid": git_hash(path.encode())})
        self._json(200, entries)

    def _refs(self, kind: str, repo_id: str) -> None:
        repo = self._readable(kind, repo_id)

        def refs(names: dict, prefix: str) -> list[dict]:
            return [{"name": n, "ref": f"{prefix}{n}", "targetCommit": sha} for n, sha in names.items()]

        prs = [{"name": f"refs/pr/{n}", "ref": f"refs/pr/{n}", "targetCommit": sha} for n, sha in repo.prs.items()]
        self._json(
            200,
            {
                "branches": refs(repo.branches, "refs/heads/"),
                "tags": refs(repo.tags, "refs/tags/"),
                "converts": [],
                "pullRequests": prs,
            },
        )

    def _preupload(self, kind: str, repo_id: str, revision: str) -> None:
        repo = self._writable(kind, repo_id)
        base = repo.head(revision) if not self.query.get("create_pr") else repo.head("main")
        existing = base.files if base else {}
        files = []
        for item in self._payload().get("files", []):
            path, size = item["path"], int(item["size"])
            lfs = path.endswith(LFS_SUFFIXES) or size > self.hub.lfs_threshold
            entry = {"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
            current = existing.get(path)
            if current is not None:
                # The oid the client compares with its own: sha256 for LFS files, git blob id otherwise.
                entry["oid"] = current.sha256 if lfs else current.git_oid
            files.append(entry)
        self._json(200, {"files": files, "commitOid": base.sha if base else None})

    def _lfs_batch(self, kind: str, repo_id: str) -> None:
        self._writable(kind, repo_id)
        base = f"http://{self.headers.get('Host')}"
        objects = []
        for obj in self._payload().get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            if oid in self.hub.lfs_objects:
                objects.append({"oid": oid, "size": size})  # already there: no actions
                continue
            actions = {"upload": {"href": f"{base}/lfs-upload/{oid}"}, "verify": {"href": f"{base}/lfs-verify"}}
            objects.append({"oid": oid, "size": size, "authenticated": True, "actions": actions})
        self._json(200, {"transfer": "basic", "objects": objects})

    def _commit(self, kind: str, repo_id: str, revision: str) -> None:
        repo = self._writable(kind, repo_id)
        if self.hub.commit_status:
            raise HubError(self.hub.commit_status, "Gateway Timeout")
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), None)
        if header is None or not header.get("summary"):
            raise HubError(400, "commit header with a summary is required")
        create_pr = self.query.get("create_pr") == "1"
        target = revision
        if not create_pr and not (revision in repo.branches or re.fullmatch(r"refs/pr/\d+", revision)):
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        parent = self._commit_at(repo, revision)
        if header.get("parentCommit") and not parent.sha.startswith(header["parentCommit"]):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(parent.files)
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                files[value["path"]] = Blob(base64.b64decode(value["content"]), False)
            elif key == "lfsFile":
                data = self.hub.lfs_objects.get(value["oid"])
                if data is None:
                    raise HubError(400, f"LFS object {value['oid']} for {value['path']} was not uploaded")
                files[value["path"]] = Blob(data, True)
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HubError(404, f"A file with this name doesn't exist: {value['path']}", "EntryNotFound")
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                files = {p: b for p, b in files.items() if not p.startswith(folder)}
        commit = self.hub.new_commit(repo, parent.sha, header["summary"], files)
        pr_url = None
        if create_pr:
            number = len(repo.prs) + 1
            repo.prs[number] = commit.sha
            pr_url = f"http://{self.headers.get('Host')}/{kind}s/{repo_id}/discussions/{number}"
        elif target in repo.branches:
            repo.branches[target] = commit.sha
        else:
            repo.prs[int(target.rsplit("/", 1)[1])] = commit.sha
        url = f"http://{self.headers.get('Host')}/{kind}s/{repo_id}/commit/{commit.sha}"
        self._json(200, {"commitOid": commit.sha, "commitUrl": url, "pullRequestUrl": pr_url})

    def _create_branch(self, kind: str, repo_id: str, branch: str) -> None:
        repo = self._writable(kind, repo_id)
        if branch in repo.branches:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        start = self._payload().get("startingPoint") or "main"
        repo.branches[branch] = self._commit_at(repo, start).sha
        self._json(200, {})

    def _create_tag(self, kind: str, repo_id: str, revision: str) -> None:
        repo = self._writable(kind, repo_id)
        tag = self._payload().get("tag")
        if tag in repo.tags:
            raise HubError(409, f"Tag already exists: {tag}")
        repo.tags[tag] = self._commit_at(repo, revision).sha
        self._json(200, {})

    def _create_pr(self, kind: str, repo_id: str) -> None:
        repo = self._writable(kind, repo_id)
        payload = self._payload()
        if not payload.get("pullRequest"):
            raise HubError(400, "only pull requests are supported here")
        number = len(repo.prs) + 1
        repo.prs[number] = repo.branches["main"]
        self._json(200, {"num": number, "title": payload.get("title", "")})

    def _pr_details(self, kind: str, repo_id: str, number: int) -> None:
        repo = self._readable(kind, repo_id)
        if number not in repo.prs:
            raise HubError(404, f"no discussion {number}")
        self._json(
            200,
            {
                "num": number,
                "title": f"PR {number}",
                "author": {"name": repo_id.split("/")[0]},
                "createdAt": "2024-01-15T10:30:00.000Z",
                "status": "draft",
                "repo": {"name": repo_id, "type": kind},
                "isPullRequest": True,
                "events": [],
                "changes": {"base": "refs/heads/main"},
                "filesWithConflicts": [],
            },
        )

    def _resolve(self, kind: str, repo_id: str, revision: str, path: str) -> None:
        commit = self._commit_at(self._readable(kind, repo_id), revision)
        blob = commit.files.get(path)
        if blob is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        headers = {
            "X-Repo-Commit": commit.sha,
            "ETag": f'"{blob.etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        data, status = blob.data, 200
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if match and data:
            start = int(match.group(1) or 0)
            end = min(int(match.group(2) or len(data) - 1), len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        self._send(status, data, headers)


# ---------------------------------------------------------------------------- pytest fixture

WRITE_TOKEN = "hf_aliceWriteToken0123456789abcdefXYZ"
READ_TOKEN = "hf_aliceReadOnlyToken0123456789abcdXY"
BOB_TOKEN = "hf_bobWriteToken0123456789abcdefghXYZ"

_LOAD_SCRIPT = """
import json, sys
import datasets
datasets.disable_progress_bars()
kwargs = json.loads(sys.argv[1])
loaded = datasets.load_dataset(**kwargs)
print(json.dumps({name: split.to_list() for name, split in loaded.items()}, default=str))
"""


class Hub:
    """The fixture's handle: the running server, its state, and the environment that points clients at it."""

    def __init__(self, server: HubServer, home: Path):
        self.server, self.state, self.url, self.home = server, server.state, server.url, home

    def env(self, token: str | None = WRITE_TOKEN, **extra: str) -> dict[str, str]:
        """Environment for a client process: this server, a private HF_HOME, no ambient tokens."""
        env = {
            "HF_ENDPOINT": self.url,
            "HF_HOME": str(self.home),
            "HF_TOKEN_PATH": str(self.home / "token"),
            "HF_HUB_OFFLINE": "0",
            "HF_DATASETS_OFFLINE": "0",
            "HF_UPDATE_DOWNLOAD_COUNTS": "0",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HUGGINGFACE_TOKEN": token or "",
            "HF_TOKEN": "",
        }
        env.update(extra)
        return env

    def load(self, repo_id: str, *, token: str | None = None, **kwargs: object) -> dict[str, list[dict]]:
        """`datasets.load_dataset(repo_id, **kwargs)` in a fresh process; {split: rows}."""
        import os
        import subprocess
        import sys

        args = {"path": repo_id, **kwargs}
        if token:
            args["token"] = token
        env = {**os.environ, **self.env(token=None)}
        result = subprocess.run(
            [sys.executable, "-c", _LOAD_SCRIPT, json.dumps(args)], capture_output=True, text=True, env=env, timeout=300
        )
        if result.returncode != 0:
            raise LoadFailed(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "load_dataset failed")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def repo(self, repo_id: str) -> Repo | None:
        return self.state.repo("dataset", repo_id)

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        commit = self.repo(repo_id).head(revision)
        return {path: blob.data for path, blob in commit.files.items()}

    def commits(self, repo_id: str) -> int:
        return len(self.repo(repo_id).commits)


class LoadFailed(Exception):
    pass


@pytest.fixture
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A Hub-compatible server on 127.0.0.1 with users alice (write and read-only tokens) and bob."""
    with HubServer() as server:
        server.state.add_token(WRITE_TOKEN, "alice", orgs=("rfai-org",))
        server.state.add_token(READ_TOKEN, "alice", write=False)
        server.state.add_token(BOB_TOKEN, "bob")
        yield Hub(server, tmp_path_factory.mktemp("hf_home"))
