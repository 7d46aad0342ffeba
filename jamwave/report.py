"""A small structured report rendered both as Markdown and as standalone HTML.

The demo collects its results as sections (text, tables, figures, the command that reproduces a
stage) and renders them twice, so ``report.md`` reads well on a code host and ``report.html`` opens
in any browser with its figures.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path

from jamcommon.files import atomic_write_text


@dataclass
class Section:
    """One stage of the report: a title and an ordered list of blocks."""

    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)

    def text(self, paragraph: str) -> Section:
        self.blocks.append(("text", paragraph))
        return self

    def command(self, line: str) -> Section:
        self.blocks.append(("command", line))
        return self

    def table(self, rows: list[dict], columns: list[str] | None = None) -> Section:
        columns = list(columns or (rows[0].keys() if rows else []))
        self.blocks.append(("table", (columns, rows)))
        return self

    def figure(self, path: str, caption: str) -> Section:
        self.blocks.append(("figure", (path, caption)))
        return self


@dataclass
class Document:
    """A titled list of sections, rendered as Markdown and as HTML.

    (The benchmarks' result record is :class:`benchmarks.harness.Report`, another concept.)
    """

    title: str
    sections: list[Section] = field(default_factory=list)

    def section(self, title: str) -> Section:
        sec = Section(title)
        self.sections.append(sec)
        return sec

    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for sec in self.sections:
            out += [f"## {sec.title}", ""]
            for kind, value in sec.blocks:
                if kind == "text":
                    out += [value, ""]
                elif kind == "command":
                    out += ["```bash", value, "```", ""]
                elif kind == "table":
                    columns, rows = value
                    out.append("| " + " | ".join(columns) + " |")
                    out.append("|" + "---|" * len(columns))
                    for row in rows:
                        out.append("| " + " | ".join(format_value(row.get(c, "")) for c in columns) + " |")
                    out.append("")
                elif kind == "figure":
                    path, caption = value
                    out += [f"![{caption}]({path})", "", f"*{caption}*", ""]
        return "\n".join(out)

    def to_html(self) -> str:
        esc = html.escape
        out = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{esc(self.title)}</title>",
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
            "table{border-collapse:collapse}td,th{border:1px solid #aaa;padding:.2em .6em;"
            "text-align:right}td.t{text-align:left}pre{background:#f4f4f4;padding:.5em;overflow-x:auto}"
            "img{max-width:100%}</style></head><body>",
            f"<h1>{esc(self.title)}</h1>",
        ]
        for sec in self.sections:
            out.append(f"<h2>{esc(sec.title)}</h2>")
            for kind, value in sec.blocks:
                if kind == "text":
                    out.append(f"<p>{esc(value)}</p>")
                elif kind == "command":
                    out.append(f"<pre><code>{esc(value)}</code></pre>")
                elif kind == "table":
                    columns, rows = value
                    out.append("<table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr>")
                    for row in rows:
                        cells = "".join(_cell(row.get(c, "")) for c in columns)
                        out.append(f"<tr>{cells}</tr>")
                    out.append("</table>")
                elif kind == "figure":
                    path, caption = value
                    out.append(
                        f'<figure><img src="{esc(path)}" alt="{esc(caption)}">'
                        f"<figcaption>{esc(caption)}</figcaption></figure>"
                    )
        out.append("</body></html>")
        return "\n".join(out)

    def write(self, folder: str | Path, stem: str = "report") -> tuple[Path, Path]:
        """Write ``<folder>/<stem>.md`` and ``.html`` (atomically, replacing earlier versions)."""
        folder = Path(folder)
        md = atomic_write_text(folder / f"{stem}.md", self.to_markdown(), overwrite=True)
        page = atomic_write_text(folder / f"{stem}.html", self.to_html(), overwrite=True)
        return md, page


def _cell(value) -> str:
    """An HTML table cell: numbers right-aligned (the table's default), text left-aligned."""
    text = html.escape(format_value(value))
    numeric = isinstance(value, int | float) or text.replace(".", "", 1).lstrip("-").isdigit()
    return f"<td>{text}</td>" if numeric else f'<td class="t">{text}</td>'


def format_value(value) -> str:
    """Format a table cell: floats to 4 significant digits, NaN as 'nan'."""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)
