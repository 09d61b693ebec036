"""The `csv` stage's configuration model."""

from __future__ import annotations

from typing import Literal

from pydantic import ValidationInfo, field_validator

from loglake.schemas.config import StageConfig

__all__ = ["CsvConfig"]


class CsvConfig(StageConfig):
    """Split delimited text (CSV, TSV) into columns; quoting per RFC 4180.

    Example:
        parse: {type: csv, field: message, columns: [time, client, method, path, status, bytes], infer_types: true}
    """

    type: Literal["csv"]
    field: str = "message"
    """Column holding the text; a record where it is null passes through unparsed."""
    delimiter: str = ","
    """The one character between fields; `"\\t"` (or the two characters `\\t`) for tab-separated values."""
    quote: str = '"'
    """The one character that quotes a field; inside a quoted field it is written twice."""
    header: bool = False
    """The first line of each `source` (each file) names the columns and is consumed, not output."""
    columns: list[str] | None = None
    """Column names for the fields in order (not with `header`); neither given: `column1`, `column2`, …."""
    infer_types: bool = False
    """Turn integers, decimals and `true`/`false` into typed values and empty fields into nulls; a column mixing kinds stays text."""
    target: str | None = None
    """Struct column to write the fields to (replaced if present); unset: each becomes a top-level column, replacing a same-named one (a record without the field keeps the old value)."""
    skip_empty_values: bool = False
    """Leave empty fields out (null in a batch) instead of keeping them as empty strings."""

    @field_validator("delimiter", "quote")
    @classmethod
    def _one_character(cls, value: str, info: ValidationInfo) -> str:
        value = "\t" if value == "\\t" else value
        if len(value) != 1:
            raise ValueError(f"must be exactly one character, not {value!r}")
        if value in "\r\n":
            raise ValueError("cannot be a line break")
        if info.field_name == "quote" and value == info.data.get("delimiter"):
            raise ValueError(f"'quote' and 'delimiter' are both {value!r}")
        return value

    @field_validator("columns")
    @classmethod
    def _names(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None:
            return None
        if info.data.get("header"):
            raise ValueError("give 'columns' or 'header: true', not both (the header line names the columns)")
        if not value:
            raise ValueError("give at least one column name, or leave 'columns' out")
        if not all(value):
            raise ValueError("column names must not be empty")
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"column names repeat: {', '.join(repeated)}")
        return value
