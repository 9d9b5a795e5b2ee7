"""Markdown, CSV, LaTeX and self-contained HTML renderings of the same tables."""

import base64
import re

import pytest

from tornadostudy.errors import UserInputError
from tornadostudy.report import pivot_blocks, render

RECORDS = [
    {"epochs": 5, "batch_size": 128, "wall_time_s": 20.0},
    {"epochs": 5, "batch_size": 128, "wall_time_s": 22.0},
    {"epochs": 10, "batch_size": 256, "wall_time_s": 30.0},
]
BLOCKS = pivot_blocks(RECORDS, "epochs", "batch_size", "wall_time_s", title="Wall time_s & more")


def test_markdown_and_csv_show_missing_cells_as_missing():
    md = render(BLOCKS, "md", heading="Report: s", notes=["a note"])
    assert md.startswith("## Report: s\n\na note\n\n### Wall time_s & more")
    assert "| 5 | 21 ± 1.4 (n=2) | — |" in md
    csv = render(BLOCKS, "csv").splitlines()
    assert csv[1:4] == ["epochs,128,256", "5,21 ± 1.4 (n=2),", "10,,30"]


def test_latex_escapes_and_uses_booktabs():
    tex = render(BLOCKS, "latex", heading="Report: my_study")
    assert r"\caption{Wall time\_s \& more}" in tex and r"\toprule" in tex
    assert r"5 & 21 $\pm$ 1.4 (n=2) & -- \\" in tex and r"10 & -- & 30 \\" in tex
    assert "% Report: my\\_study" not in tex and "% Report: my_study" in tex  # a comment needs no escaping


def test_html_is_one_self_contained_page_with_the_figures_embedded(tmp_path):
    png = tmp_path / "f.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    page = render(BLOCKS, "html", heading="Report: <s>", plots=[("a figure", png)], notes=["n < 1"])
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<h1>Report: &lt;s&gt;</h1>" in page and "<p>n &lt; 1</p>" in page
    (embedded,) = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert base64.b64decode(embedded) == png.read_bytes()
    assert '<td class="missing">—</td>' in page and "<td>21 ± 1.4 (n=2)</td>" in page
    assert "src='http" not in page and "<link" not in page and "<script" not in page


def test_no_trials_and_unknown_formats():
    assert "(no completed trials yet)" in render([], "md")
    assert "(no completed trials yet)" in render([], "html")
    with pytest.raises(UserInputError, match="--format 'xlsx' is not valid: use one of md, csv, latex, html"):
        render([], "xlsx")


def test_markdown_and_latex_refer_to_the_figures_beside_them(tmp_path):
    plots = [("Wall time vs batch size", tmp_path / "figures" / "wall_vs_batch.png")]
    md = render(BLOCKS, "md", heading="Report: s", plots=plots)
    assert "### Figures" in md and "![Wall time vs batch size](figures/wall_vs_batch.png)" in md
    tex = render(BLOCKS, "latex", plots=plots)
    assert r"\includegraphics[width=\linewidth]{figures/wall_vs_batch.png}" in tex
    assert r"\caption{Wall time vs batch size}" in tex and r"\usepackage{graphicx}" in tex
    assert "figures/" not in render(BLOCKS, "csv", plots=plots)
