"""The report's chart data: bars and columns scaled to their largest value, with their numbers.

The SVG itself is drawn by the report template (mailer/engagement/templates/report.html);
here only the geometry is computed, so that the template stays a plain drawing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Bar:
    """One row of a bar chart: its label, value, the number shown beside it, its length."""

    label: str
    value: float
    text: str
    share: float  # 0..1 of the chart's longest bar
    note: str = ""
    highlight: bool = False

    @property
    def width(self) -> float:
        """The bar's width in the template's 0..100 viewBox (a visible sliver for > 0)."""
        return 0.0 if self.value <= 0 else max(self.share * 100, 0.8)


@dataclass(frozen=True)
class Column:
    """One column of a time chart."""

    label: str
    value: int
    share: float


def bars(
    rows: Sequence[tuple[str, float]],
    *,
    total: int | None = None,
    notes: Sequence[str] = (),
    texts: Sequence[str] = (),
    highlight: Sequence[bool] = (),
) -> list[Bar]:
    """Bars scaled to the largest value; with `total`, each number shows its share too."""
    largest = max((value for _, value in rows), default=0) or 1
    out = []
    for i, (label, value) in enumerate(rows):
        if texts:
            shown = texts[i]
        elif total:
            shown = f"{value:g} ({value / total * 100:.0f} %)"
        else:
            shown = f"{value:g}"
        out.append(
            Bar(
                label,
                value,
                shown,
                value / largest,
                note=notes[i] if notes else "",
                highlight=highlight[i] if highlight else False,
            )
        )
    return out


def columns(rows: Sequence[tuple[str, int]]) -> list[Column]:
    largest = max((value for _, value in rows), default=0) or 1
    return [Column(label, value, value / largest) for label, value in rows]
