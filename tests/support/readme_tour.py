"""Run README's quick tour as written, in order, in one shell: `make tour` (after `make demo`).

The block under "## A quick tour" is taken from README.md, so the tour cannot drift from what
is run. The one step that needs the outside world, `rfai upload`, talks to the Hub-compatible
test server on 127.0.0.1 (HF_ENDPOINT, and a token for the user `you`), so the tour is offline.
Each line is echoed with the seconds it took; the first failing line stops the tour non-zero.

    .venv/bin/python tests/support/readme_tour.py [README.md]
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from support.hubserver import HubServer  # noqa: E402

TOKEN = "hf_tour_token_for_you"


def tour_lines(readme: Path) -> list[str]:
    """The commands of the README's tour block, comments cut off."""
    text = readme.read_text(encoding="utf-8")
    section = text.split("## A quick tour", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = [line.split("  #")[0].strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def tour_script(lines: list[str]) -> str:
    steps = ["set -eo pipefail"]
    for line in lines:
        steps += [
            f"echo {shlex.quote('$ ' + line)}",
            "start=$SECONDS",
            line,
            'echo "  ($((SECONDS - start)) s)"',
        ]
    return "\n".join(steps) + "\n"


def main() -> int:
    readme = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md").resolve()
    lines = tour_lines(readme)
    with HubServer() as server, tempfile.TemporaryDirectory() as home:
        server.state.add_token(TOKEN, "you")
        env = {
            **os.environ,
            "HF_ENDPOINT": server.url,
            "HF_HOME": home,
            "HF_TOKEN": TOKEN,
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_XET": "1",  # adapters are LFS files: the LFS batch protocol, which the server speaks
        }
        env.pop("HUGGINGFACE_TOKEN", None)
        result = subprocess.run(["bash", "-c", tour_script(lines)], cwd=readme.parent, env=env)
        if result.returncode == 0:
            files = sorted(server.state.repo("dataset", "you/code-rlaif").head().files)
            print(f"tour: all {len(lines)} lines ran; the Hub holds you/code-rlaif: {', '.join(files)}")
        else:
            print(f"tour: stopped with exit status {result.returncode}", file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
