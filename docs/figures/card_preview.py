"""Render a dataset card as the Hub would show it, and screenshot it with headless Chromium.

    .venv/bin/python docs/figures/card_preview.py datasets/README.md docs/figures/card.png

The Markdown goes through markdown-it-py (CommonMark plus GFM tables; it already comes with
rich), the YAML front matter is shown as the metadata box above the card, and Chromium takes a
full-page screenshot at the width of the Hub's card column. Looking at the picture is the check:
it catches what a text diff does not (a table that does not render, a heading out of order).
"""

from __future__ import annotations

import html
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from markdown_it import MarkdownIt

STYLE = """
body { font: 15px/1.6 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1f2328;
       max-width: 860px; margin: 24px auto; padding: 0 24px; }
pre { background: #f6f8fa; padding: 12px; overflow-x: auto; font-size: 13px; border-radius: 6px; }
code { font-family: ui-monospace, Menlo, monospace; font-size: 13px; }
table { border-collapse: collapse; margin: 12px 0; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; }
th { background: #f6f8fa; }
h1, h2 { border-bottom: 1px solid #d8dee4; padding-bottom: 4px; }
img { max-width: 100%; }
.tags span { display: inline-block; border: 1px solid #d0d7de; border-radius: 12px; padding: 0 10px;
             margin: 0 6px 6px 0; font-size: 13px; background: #f6f8fa; }
.metadata { border: 1px solid #d0d7de; border-radius: 6px; margin-bottom: 24px; }
.metadata summary { padding: 6px 12px; background: #f6f8fa; font-weight: 600; }
"""


def card_html(card: str, base: Path) -> str:
    """The page: the metadata as the Hub's header chips (the YAML itself folded), then the card."""
    front, body = "", card
    if card.startswith("---\n"):
        front, _, body = card[4:].partition("\n---\n")
    meta = yaml.safe_load(front) or {}
    chips = [f"license: {meta.get('license')}", *meta.get("task_categories", []), *meta.get("size_categories", [])]
    chips += meta.get("tags", [])
    rendered = MarkdownIt("commonmark").enable("table").render(body)
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><base href="{base.as_uri()}/">'
        f"<style>{STYLE}</style></head><body>"
        f'<p class="tags">{"".join(f"<span>{html.escape(str(chip))}</span>" for chip in chips)}</p>'
        f'<details class="metadata"><summary>Metadata (YAML)</summary><pre>{html.escape(front)}</pre></details>'
        f"{rendered}</body></html>"
    )


def screenshot(page: Path, png: Path, width: int = 900, height: int = 4000) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        sys.exit("error: no chromium on PATH (apt-get install chromium)")
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={width},{height}",
         f"--screenshot={png.resolve()}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    _crop_blank_bottom(png)


def _crop_blank_bottom(png: Path, margin: int = 24) -> None:
    """The window is taller than any card; cut the white below the last line of text."""
    from PIL import Image, ImageChops

    image = Image.open(png).convert("RGB")
    box = ImageChops.difference(image, Image.new("RGB", image.size, "white")).getbbox()
    if box:
        image.crop((0, 0, image.width, min(image.height, box[3] + margin))).save(png)


def main() -> None:
    card, png = Path(sys.argv[1]), Path(sys.argv[2])
    with tempfile.TemporaryDirectory() as scratch:
        page = Path(scratch) / "card.html"
        page.write_text(card_html(card.read_text(encoding="utf-8"), card.parent.resolve()), encoding="utf-8")
        screenshot(page, png)
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
