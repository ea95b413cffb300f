"""The host file of `rfai train --hostfile`: mlx.launch's format, read with one-line errors.

Either a JSON list of hosts or an object {"backend": ..., "envs": ["NAME=value", ...], "hosts": [...]}.
Each host is {"ssh": NAME, "ips": [...], "rdma": [...]}: `ssh` is what `ssh` is given (a name, an
address, `user@host` or an alias of ~/.ssh/config; 127.0.0.1, localhost or this machine's name
start the rank here), `ips` the addresses the ranks reach it at (the ring backend's, and rank 0's
for NCCL and JACCL), `rdma` the JACCL devices towards each other host. A host listed twice runs
two ranks.
"""

from __future__ import annotations

import json
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

BACKENDS = ("ring", "jaccl", "nccl")
_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*", re.DOTALL)


@dataclass(frozen=True)
class Host:
    ssh: str
    ips: tuple[str, ...] = ()
    rdma: tuple = ()

    @property
    def local(self) -> bool:
        return self.ssh in ("127.0.0.1", "localhost", socket.gethostname())


@dataclass(frozen=True)
class Hostfile:
    hosts: tuple[Host, ...]
    backend: str | None = None
    envs: tuple[str, ...] = field(default_factory=tuple)


def read_hostfile(path: str | Path) -> Hostfile:
    """The hosts of `path`; InputError naming the file (and the entry) when it is not a host file."""
    name = str(path)
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise InputError(f"--hostfile {name}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"--hostfile {name}: not JSON ({exc})") from None
    backend, envs, hosts = None, [], data
    if isinstance(data, dict):
        backend, envs, hosts = data.get("backend") or None, data.get("envs", []), data.get("hosts")
    if not isinstance(hosts, list) or not hosts:
        raise InputError(f"--hostfile {name}: expected a non-empty list of hosts, or an object with one under 'hosts'")
    if backend is not None and backend not in BACKENDS:
        raise InputError(f"--hostfile {name}: backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if not isinstance(envs, list) or not all(isinstance(e, str) and _ENV.fullmatch(e) for e in envs):
        raise InputError(f"--hostfile {name}: 'envs' must be a list of NAME=value strings")
    return Hostfile(tuple(_host(name, index, entry) for index, entry in enumerate(hosts)), backend, tuple(envs))


def _host(name: str, index: int, entry) -> Host:
    where = f"--hostfile {name}: host {index}"
    if not isinstance(entry, dict) or not isinstance(entry.get("ssh"), str) or not entry["ssh"].strip():
        raise InputError(f"{where}: expected an object with an 'ssh' host name")
    ips = entry.get("ips", [])
    if not isinstance(ips, list) or not all(isinstance(ip, str) and ip for ip in ips):
        raise InputError(f"{where}: 'ips' must be a list of addresses")
    rdma = entry.get("rdma", [])
    if not isinstance(rdma, list):
        raise InputError(f"{where}: 'rdma' must be a list")
    return Host(entry["ssh"].strip(), tuple(ips), tuple(rdma))
