"""The terminal's one table helper: columns line up, nothing trails, bad rows are refused."""

from __future__ import annotations

import pytest

from aebench.core.text_table import text_table


def test_columns_are_as_wide_as_their_widest_cell_two_spaces_apart() -> None:
    text = text_table(["run", "status"], [["ae-seed0", "done"], ["vae", "failed"]], rule=True)
    lines = text.splitlines()
    assert lines == ["run       status", "--------  ------", "ae-seed0  done", "vae       failed"]


def test_right_alignment_and_no_trailing_spaces() -> None:
    lines = text_table(["n", "img/s"], [[1, 2.5], [100, ""]], align="right").splitlines()
    assert lines == ["  n  img/s", "  1    2.5", "100"]
    assert not any(line.endswith(" ") for line in lines)


def test_a_row_with_the_wrong_number_of_cells_is_refused() -> None:
    with pytest.raises(ValueError, match="one cell per header column"):
        text_table(["a", "b"], [["only one"]])
    with pytest.raises(ValueError, match="align"):
        text_table(["a"], [], align="centre")
