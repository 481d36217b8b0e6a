"""The three output formats: their content types, framing, and chunk encoders.

A body is an *opening* (``[``, ``{"key":[`` or a CSV header line), chunks of
encoded rows joined by a *separator* (``,`` between JSON array chunks), and a
*closing* (``]``). The closing is only written after the last row was read
successfully, so an interrupted JSON document is never syntactically complete.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .encoders import (
    JSONBackend,
    csv_bool,
    csv_cell,
    csv_float,
    csv_json,
    csv_lines,
    csv_temporal,
    encode_text,
    pg_utc_timestamp,
)
from .query import Column

__all__ = ["CONTENT_TYPES", "FORMATS", "Framing", "check_options", "framing", "row_encoder"]

FORMATS = ("json", "ndjson", "csv")

CONTENT_TYPES = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
}

ChunkEncoder = Callable[[Sequence[Any]], bytes]


@dataclass(frozen=True)
class Framing:
    """What goes around a body's chunks: ``[`` ... ``,`` ... ``]`` for a JSON array."""

    opening: bytes = b""
    separator: bytes = b""
    closing: bytes = b""

    def frame(self, body: bytes, opened: bool) -> bytes:
        """``body`` with the opening in front if it is the first chunk, else the separator."""
        if opened:
            return self.separator + body if self.separator else body
        return self.opening + body

    def ending(self, opened: bool) -> bytes:
        """What follows the last chunk: the closing, or the whole empty document if none came."""
        return self.closing if opened else self.opening + self.closing


def check_options(format: str, envelope: str | None, chunk_size: int) -> None:
    """Reject bad arguments with a message that says what to pass instead."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(map(repr, FORMATS))}, not {format!r}.")
    if envelope is not None:
        if not isinstance(envelope, str):
            raise TypeError(f"envelope must be a string (the JSON key), not {envelope!r}.")
        if format != "json":
            raise ValueError(
                f"envelope only applies to format='json' (an object around the array); "
                f"{format} has no place for it."
            )
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, not {chunk_size!r}.")


def csv_header(names: Sequence[str]) -> bytes:
    return csv_lines([list(names)])


def framing(format: str, envelope: str | None = None, header: Sequence[str] | None = None):
    """The opening, separator and closing of a body in ``format``."""
    if format == "json":
        if envelope is None:
            return Framing(b"[", b",", b"]")
        return Framing(b"{" + encode_text(envelope) + b":[", b",", b"]}")
    if format == "csv" and header is not None:
        return Framing(csv_header(header))
    return Framing()


# --- rows read from a queryset (tuples in column order) ---------------------------------------

Convert = Callable[[Any], Any]


def _json_converter(column: Column, backend: JSONBackend) -> Convert | None:
    # Floats come out as repr() spells them, whichever JSON library writes the chunk.
    if column.kind == "float":
        return backend.float_converter()
    if column.kind in ("json", "other"):
        return backend.deep_float_converter()
    return None


_CSV_CONVERTERS: dict[str, Convert] = {
    "bool": csv_bool,
    "float": csv_float,
    "datetime": csv_temporal,
    "time": csv_temporal,
    "duration": csv_temporal,
    "json": csv_json,
    "other": csv_cell,
}


def _apply(converters: list[tuple[int, Convert]]) -> Callable[[Sequence[Any]], list]:
    if not converters:
        return list

    def convert(row: Sequence[Any]) -> list:
        row = list(row)
        for index, fn in converters:
            row[index] = fn(row[index])
        return row

    return convert


def row_encoder(
    format: str,
    columns: Sequence[Column],
    backend: JSONBackend,
    text_timestamps: Sequence[int] = (),
) -> ChunkEncoder:
    """Encode a chunk of row tuples (in ``columns`` order) as ``format``.

    ``text_timestamps`` are the indexes of datetime columns read as PostgreSQL's
    text rather than as ``datetime`` objects (see ``rows.py``).
    """
    names = [column.name for column in columns]
    respelled = dict.fromkeys(text_timestamps, pg_utc_timestamp)
    if format == "csv":
        convert = _apply(
            [
                (i, respelled.get(i) or _CSV_CONVERTERS[c.kind])
                for i, c in enumerate(columns)
                if i in respelled or c.kind in _CSV_CONVERTERS
            ]
        )
        return lambda rows: csv_lines([convert(row) for row in rows])

    converters = [
        (i, fn)
        for i, c in enumerate(columns)
        if (fn := respelled.get(i) or _json_converter(c, backend)) is not None
    ]
    encode = backend.items if format == "json" else backend.lines
    if not converters:
        return lambda rows: encode([dict(zip(names, row, strict=False)) for row in rows])
    convert = _apply(converters)
    return lambda rows: encode([dict(zip(names, convert(row), strict=False)) for row in rows])


# --- items of any iterable -------------------------------------------------------------------


class CSVItems:
    """Encode dicts (keys as the header) or sequences (with ``header`` given) as CSV chunks.

    Without a header, the first row's keys become it; it is written in front of
    the first chunk.
    """

    def __init__(self, header: Sequence[str] | None) -> None:
        self.header = list(header) if header is not None else None
        self._header_written = header is not None

    def __call__(self, items: Sequence[Any]) -> bytes:
        if not items:
            return b""
        opening = b""
        if self.header is None:
            first = items[0]
            if not isinstance(first, Mapping):
                raise TypeError(
                    "stream_csv() rows must be dicts, or sequences with header=[...] given; "
                    f"got {type(first).__name__} and no header."
                )
            self.header = list(first)
        if not self._header_written:
            opening = csv_header(self.header)
            self._header_written = True
        header = self.header
        rows = []
        for item in items:
            if isinstance(item, Mapping):
                rows.append([csv_cell(item.get(key)) for key in header])
            elif isinstance(item, str | bytes) or not isinstance(item, Sequence):
                raise TypeError(
                    f"stream_csv() rows must be dicts or sequences, not {type(item).__name__}."
                )
            else:
                if len(item) != len(header):
                    raise ValueError(
                        f"stream_csv() row has {len(item)} values but the header has "
                        f"{len(header)} columns: {item!r}"
                    )
                rows.append([csv_cell(value) for value in item])
        return opening + csv_lines(rows)


def item_encoder(format: str, backend: JSONBackend, header: Sequence[str] | None) -> ChunkEncoder:
    """Encode a chunk of arbitrary items as ``format``."""
    if format == "csv":
        return CSVItems(header)
    if format == "json":
        return backend.items
    return backend.lines
