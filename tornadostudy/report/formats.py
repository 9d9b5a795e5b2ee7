"""Render report tables as Markdown, CSV, LaTeX or one self-contained HTML page."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from tornadostudy.errors import UserInputError
from tornadostudy.report.tables import Block

__all__ = ["FORMATS", "render"]

FORMATS = ("md", "csv", "latex", "html")
_EMPTY = "(no completed trials yet)"


def _corner(table, sep: str = " \\ ") -> str:
    """The table's top-left cell: 'rows \\ columns' for a pivot, the row label alone for a list."""
    if table.columns.name is None:
        return str(table.index.name)
    return f"{table.index.name}{sep}{table.columns.name}"


def _markdown(block: Block) -> str:
    table = block.table
    header = f"| {_corner(table)} | " + " | ".join(str(c) for c in table.columns) + " |"
    lines = [f"### {block.title}", "", header, "|" + "---|" * (len(table.columns) + 1)]
    for idx, row in table.iterrows():
        lines.append(f"| {idx} | " + " | ".join(v if v else "—" for v in row) + " |")
    return "\n".join(lines)


def _csv(block: Block) -> str:
    buf = io.StringIO()
    block.table.to_csv(buf)
    return f"# {block.title}\n{buf.getvalue()}"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_LATEX_TEXT = {"±": r"$\pm$", "×": r"$\times$", "—": "---", "–": "--"}


def _tex(text: object) -> str:
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    for char, macro in _LATEX_TEXT.items():
        out = out.replace(char, macro)
    return out


def _latex(block: Block) -> str:
    """A booktabs table; a missing cell is "--"."""
    table = block.table
    cols = list(table.columns)
    lines = [
        r"\begin{table}[ht]",
        r"\centering",
        rf"\caption{{{_tex(block.title)}}}",
        r"\begin{tabular}{l" + "r" * len(cols) + "}",
        r"\toprule",
        _tex(_corner(table, " \\ ")) + " & " + " & ".join(_tex(c) for c in cols) + r" \\",
        r"\midrule",
    ]
    for idx, row in table.iterrows():
        lines.append(f"{_tex(idx)} & " + " & ".join(_tex(v) if v else "--" for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; }
td.missing { color: #aaa; text-align: center; }
figure { display: inline-block; margin: 0 1em 1.5em 0; }
figcaption { font-size: 0.9em; color: #555; }
img { max-width: 640px; }
"""


def _html_table(block: Block) -> str:
    table = block.table
    esc = html.escape
    head = f"<tr><th>{esc(_corner(table))}</th>"
    head += "".join(f"<th>{esc(str(c))}</th>" for c in table.columns) + "</tr>"
    body = []
    for idx, row in table.iterrows():
        cells = "".join(f"<td>{esc(v)}</td>" if v else '<td class="missing">—</td>' for v in row)
        body.append(f"<tr><th>{esc(str(idx))}</th>{cells}</tr>")
    return f"<h3>{esc(block.title)}</h3>\n<table>\n{head}\n" + "\n".join(body) + "\n</table>"


def _html(blocks: list[Block], heading: str, plots: list[tuple[str, Path]], notes: list[str], empty: str) -> str:
    esc = html.escape
    parts = [
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{esc(heading)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{esc(heading)}</h1>",
    ]
    parts += [f"<p>{esc(n)}</p>" for n in notes]
    lead_shown = [b for b in blocks if b.lead]
    parts += [_html_table(b) for b in lead_shown]  # the summary, before the figures
    blocks = [b for b in blocks if not b.lead]
    if plots:
        parts.append("<h2>Plots</h2>")
        for caption, path in plots:
            data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
            parts.append(
                f"<figure><img alt='{esc(caption)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{esc(caption)}</figcaption></figure>"
            )
    parts.append("<h2>Tables</h2>")
    parts += [_html_table(b) for b in blocks] or [f"<p>{esc(empty if not lead_shown else 'no further tables')}</p>"]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def render(
    blocks: list[Block],
    fmt: str = "md",
    heading: str | None = None,
    plots: list[tuple[str, Path]] | None = None,
    notes: list[str] | None = None,
    empty: str = _EMPTY,
) -> str:
    """The whole report as text. HTML embeds ``plots`` (caption, PNG path); Markdown and LaTeX refer to them
    as ``figures/<name>.png`` beside the report file. ``empty`` is what stands where the tables would be when
    there are none."""
    if fmt not in FORMATS:
        raise UserInputError(f"--format {fmt!r} is not valid: use one of {', '.join(FORMATS)}")
    notes = notes or []
    plots = plots or []
    if fmt == "html":
        return _html(blocks, heading or "tornadostudy report", plots, notes, empty)
    if fmt == "md":
        head = (f"## {heading}\n\n" if heading else "") + "".join(f"{n}\n\n" for n in notes)
        figures = "".join(f"![{c}](figures/{Path(p).name})\n\n*{c}*\n\n" for c, p in plots)
        body = "\n\n".join(_markdown(b) for b in blocks) if blocks else empty
        return head + body + "\n" + (f"\n### Figures\n\n{figures}" if figures else "")
    if fmt == "latex":
        head = (f"% {heading}\n" if heading else "") + "".join(f"% {n}\n" for n in notes)
        body = "\n\n".join(_latex(b) for b in blocks) if blocks else f"% {empty}"
        figures = "".join(
            "\\begin{figure}[ht]\\centering\\includegraphics[width=\\linewidth]"
            f"{{figures/{Path(p).name}}}\\caption{{{_tex(c)}}}\\end{{figure}}\n"
            for c, p in plots
        )
        needs = "% needs \\usepackage{booktabs}" + (" and \\usepackage{graphicx}" if figures else "") + "\n"
        return head + needs + body + "\n" + (f"\n{figures}" if figures else "")
    return ("\n\n".join(_csv(b) for b in blocks) + "\n") if blocks else empty + "\n"
