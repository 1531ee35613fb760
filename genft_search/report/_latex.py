"""LaTeX for every table the project writes (trial exports, ablation tables): one escaper, one booktabs
layout, so a name with ``_`` or ``%`` comes out the same wherever it is printed."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["booktabs", "latex_escape"]

#: LaTeX's special characters in text mode and what prints each one literally
_SPECIAL = {
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


def latex_escape(text: object) -> str:
    """``str(text)`` with LaTeX's special characters escaped, for a table cell or a header."""
    return "".join(_SPECIAL.get(char, char) for char in str(text))


def _row(cells: Sequence[str]) -> str:
    return " &".join(f" {cell}" if cell else "" for cell in cells).lstrip() + " \\\\"


def booktabs(comment: str, align: str, header: Sequence[str], *blocks: Sequence[Sequence[str]]) -> str:
    """A booktabs ``tabular``: a ``%`` comment line, the header row, then each block of rows after a
    ``\\midrule``. Cells are LaTeX already (escape text with :func:`latex_escape`)."""
    lines = [f"% {comment}", "\\begin{tabular}{" + align + "}", "\\toprule", _row(header)]
    for rows in blocks:
        lines.append("\\midrule")
        lines.extend(_row(row) for row in rows)
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"
