"""Run a command as an ordinary user (uid 65534) when the checkout and its Python may sit
under a directory only root can enter (/root, with pyenv and the CI clone).

Started as root inside `unshare --mount --propagation private`: every path the user needs is
bound aside, a tmpfs (mode 755) is mounted over its first ancestor that others cannot enter,
and the path is bound back at the same place, so absolute paths (the venv's, sys.path's) still
hold. Nothing of this is visible outside the private mount namespace.

    unshare --mount --propagation private python as_user.py PATH... -- COMMAND...
"""

import os
import stat
import subprocess
import sys
import tempfile

NOBODY = 65534


def closed_ancestor(path: str) -> str | None:
    """The first directory on the way to `path` that others may not enter, or None."""
    parts = os.path.realpath(path).split("/")
    for depth in range(2, len(parts) + 1):
        ancestor = "/".join(parts[:depth])
        if os.path.isdir(ancestor) and not os.stat(ancestor).st_mode & stat.S_IXOTH:
            return ancestor
    return None


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def expose(paths: list[str]) -> None:
    stage = tempfile.mkdtemp(prefix="rfai-as-user-")
    mount("-t", "tmpfs", "-o", "mode=700", "rfai-stage", stage)
    plan = []
    for index, path in enumerate(sorted({os.path.realpath(p) for p in paths})):
        ancestor = closed_ancestor(path)
        if ancestor is None:
            continue
        aside = os.path.join(stage, str(index))
        os.mkdir(aside)
        mount("--rbind", path, aside)
        plan.append((ancestor, path, aside))
    for ancestor in sorted({ancestor for ancestor, _, _ in plan}, key=len):
        mount("-t", "tmpfs", "-o", "mode=755", "rfai-open", ancestor)
    for _, path, aside in plan:
        os.makedirs(path, mode=0o755, exist_ok=True)
        mount("--rbind", aside, path)


def main() -> None:
    split = sys.argv.index("--")
    expose(sys.argv[1:split])
    home = tempfile.mkdtemp(prefix="rfai-user-home-")
    os.chown(home, NOBODY, NOBODY)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        **{key: value for key, value in os.environ.items() if key == "PYTHONPATH"},
    }
    os.execvpe(
        "setpriv",
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
            *sys.argv[split + 1 :],
        ],
        env,
    )


if __name__ == "__main__":
    main()
