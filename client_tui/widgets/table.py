"""A row-cursor DataTable with j/k, refilled by key so the cursor stays on its row."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

Cell = str | Text
Row = tuple[str, Sequence[Cell]]
#: A column: its label (also its key, in lower case), its width in cells, and optionally "right"
#: for numbers. Fixed widths keep columns still while numbers change (and DataTable's auto
#: width can lag an updated cell).
Column = tuple[str, int] | tuple[str, int, str]


class TradeTable(DataTable):
    """DataTable of keyed rows; `show(rows)` redraws only when the rows changed."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    def __init__(self, columns: Sequence[Column], **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._shown: list[tuple[str, tuple[Cell, ...]]] = []
        self._columns: tuple[Column, ...] = ()
        self.set_columns(columns)

    def set_columns(self, columns: Sequence[Column]) -> None:
        """Use these columns (e.g. narrower ones at 80 columns); the next `show` refills."""
        if tuple(columns) == self._columns:
            return
        if self._columns:
            self.clear(columns=True)
            self._shown = []
        self._columns = tuple(columns)
        for label, width, *align in columns:
            shown = Text(label, justify="right") if align == ["right"] else label
            self.add_column(shown, key=label.lower(), width=width)

    def show(self, rows: Sequence[Row]) -> None:
        """Replace the rows (by key), keeping a moved cursor on its key when it is still there."""
        wanted = [(key, tuple(cells)) for key, cells in rows]
        if wanted == self._shown:
            return
        current = self.selected_key
        old_keys = [key for key, _ in self._shown]
        new_keys = [key for key, _ in wanted]
        if old_keys == new_keys:
            for row, ((_, cells), (_, before)) in enumerate(zip(wanted, self._shown)):
                for column, (cell, old) in enumerate(zip(cells, before)):
                    if cell != old:
                        self.update_cell_at((row, column), cell)
        else:
            at_top = self.cursor_row <= 0
            self.clear()
            for key, cells in wanted:
                self.add_row(*cells, key=key)
            # A cursor moved down stays on its row; one at the top stays at the top.
            if current in new_keys and not at_top:
                self.move_cursor(row=new_keys.index(current), animate=False)
        self._shown = wanted

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor (None for an empty table)."""
        if not self.row_count or not self._shown:
            return None
        row = min(max(self.cursor_row, 0), len(self._shown) - 1)
        return self._shown[row][0]
