"""Column storage shared by the generator and the loader, and PostgreSQL's binary COPY encoding.

The generator keeps every column as a plain numpy array in the cheapest exact form (timestamps as
int64 microseconds since the Unix epoch, dates as int days, money and quantities as scaled int64,
text as category codes). That form converts exactly into both pandas frames (for ``generate``) and
the binary COPY format (for ``seed_database``): binary COPY is several times faster to produce from
numpy than CSV text, and faster for the server to parse, which is what makes a 100-restaurant,
two-year chain load in minutes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.contract import TableDef, contract

US_PER_S = 1_000_000
US_PER_MIN = 60 * US_PER_S
US_PER_H = 60 * US_PER_MIN
US_PER_DAY = 24 * US_PER_H
# PostgreSQL's binary epoch is 2000-01-01.
_PG_EPOCH_DAYS = 10957
_PG_EPOCH_US = _PG_EPOCH_DAYS * US_PER_DAY


@dataclass
class Column:
    """One column: values, an optional null mask, and categories when values are text codes.

    values: int64 (bigint, integer, timestamptz as µs since 1970, date as days since 1970,
    numeric as value * 10**scale), bool, or for text either int codes into ``categories``
    or an object array of str/None.
    """

    values: np.ndarray
    null: np.ndarray | None = None
    categories: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.values)

    def take(self, idx: np.ndarray) -> "Column":
        return Column(self.values[idx], None if self.null is None else self.null[idx], self.categories)


def text_col(codes: np.ndarray, categories, null: np.ndarray | None = None) -> Column:
    return Column(np.asarray(codes, dtype=np.int64), null, np.asarray(list(categories), dtype=object))


def obj_col(values) -> Column:
    """Text from a sequence of str (None for null)."""
    arr = np.asarray(values, dtype=object)
    null = pd.isna(arr)
    return Column(arr, null if null.any() else None)


def _as_codes(col: Column) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    if col.categories is not None:
        return col.values, col.categories, col.null
    codes, uniques = pd.factorize(col.values, use_na_sentinel=True)
    null = codes < 0
    null = null if null.any() else None
    if col.null is not None:
        null = col.null if null is None else (null | col.null)
    return np.where(codes < 0, 0, codes), np.asarray(uniques, dtype=object), null


def concat_columns(parts: list[Column]) -> Column:
    """Concatenate chunk columns (re-coding text whose chunks have different categories)."""
    if len(parts) == 1:
        return parts[0]
    anynull = any(p.null is not None for p in parts)
    null = np.concatenate([p.null if p.null is not None else np.zeros(len(p), bool) for p in parts]) if anynull else None
    if any(p.categories is not None for p in parts):
        vals = np.concatenate([_decode_text(p) for p in parts])
        return Column(vals, null)
    return Column(np.concatenate([p.values for p in parts]), null)


def _decode_text(col: Column) -> np.ndarray:
    if col.categories is None:
        out = col.values.astype(object)
    else:
        cats = np.asarray(col.categories, dtype=object)
        out = cats[col.values] if len(cats) else np.full(len(col.values), None, dtype=object)
    if col.null is not None:
        out = out.copy()
        out[col.null] = None
    return out


# ---------------------------------------------------------------------------------------------
# pandas


def to_frame(table: str, cols: dict[str, Column]) -> pd.DataFrame:
    """A DataFrame with exactly the contract's columns, in contract order, in natural dtypes.

    bigint/integer -> int64 (nullable Int64 when the column has nulls), numeric -> float64,
    timestamptz -> datetime64[us, UTC], date -> object of datetime.date, text -> str, boolean -> bool.
    """
    tdef: TableDef = contract()[table]
    data = {}
    for cdef in tdef.columns:
        col = cols[cdef.name]
        null = col.null if (col.null is not None and col.null.any()) else None
        t = cdef.pgtype
        if t in ("bigint", "integer"):
            if null is None:
                s = pd.Series(col.values.astype(np.int64))
            else:
                s = pd.Series(pd.arrays.IntegerArray(col.values.astype(np.int64), null.copy()))
        elif t == "numeric":
            v = col.values.astype(np.float64) / (10 ** cdef.scale)
            if null is not None:
                v[null] = np.nan
            s = pd.Series(v)
        elif t == "timestamptz":
            v = col.values.astype("datetime64[us]")
            if null is not None:
                v = v.copy()
                v[null] = np.datetime64("NaT")
            s = pd.Series(v).dt.tz_localize("UTC")
        elif t == "date":
            base = dt.date(1970, 1, 1)
            v = np.array([base + dt.timedelta(days=int(x)) for x in col.values], dtype=object)
            if null is not None:
                v[null] = None
            s = pd.Series(v, dtype=object)
        elif t == "boolean":
            s = pd.Series(col.values.astype(bool))
        else:
            s = pd.Series(_decode_text(col), dtype="str")
        data[cdef.name] = s
    n = len(next(iter(cols.values()))) if cols else 0
    frame = pd.DataFrame(data, index=pd.RangeIndex(n))
    return frame


def empty_columns(table: str) -> dict[str, Column]:
    out = {}
    for cdef in contract()[table].columns:
        if cdef.pgtype in ("text", "char"):
            out[cdef.name] = Column(np.zeros(0, np.int64), None, np.array([], dtype=object))
        elif cdef.pgtype == "boolean":
            out[cdef.name] = Column(np.zeros(0, bool))
        else:
            out[cdef.name] = Column(np.zeros(0, np.int64))
    return out


# ---------------------------------------------------------------------------------------------
# binary COPY

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
COPY_TRAILER = b"\xff\xff"


def _be(values: np.ndarray, dtype: str, width: int) -> np.ndarray:
    return np.ascontiguousarray(values.astype(dtype)).view(np.uint8).reshape(-1, width)


def _numeric_bytes(scaled: np.ndarray, scale: int) -> np.ndarray:
    """Fixed-width binary numerics: 4 base-10000 digits, weight 2 (|value| < 10**12).

    PostgreSQL normalises leading and trailing zero digits on receipt, so a fixed layout is exact.
    """
    v = scaled.astype(np.int64)
    neg = v < 0
    a = np.abs(v) * (10 ** (4 - scale))
    d3 = a % 10000
    ip = a // 10000
    d2 = ip % 10000
    d1 = (ip // 10000) % 10000
    d0 = ip // 100_000_000
    if (d0 >= 10000).any():
        raise ValueError("numeric value out of the encoder's range")
    n = len(v)
    words = np.empty((n, 8), dtype=">i2")
    words[:, 0] = 4
    words[:, 1] = 2
    words[:, 2] = np.where(neg, 0x4000, 0)
    words[:, 3] = scale
    words[:, 4] = d0
    words[:, 5] = d1
    words[:, 6] = d2
    words[:, 7] = d3
    return words.view(np.uint8).reshape(n, 16)


def encode_copy_binary(table: str, cols: dict[str, Column]) -> bytes:
    """Rows of one table as a complete binary COPY stream (header, tuples, trailer).

    Built as one (rows x max-row-width) byte matrix plus a mask of the bytes that are really
    there (text and nulls make rows variable in width); the masked bytes in C order are the
    stream. No Python loop over rows.
    """
    tdef = contract()[table]
    n = len(cols[tdef.columns[0].name])
    if n == 0:
        return COPY_HEADER + COPY_TRAILER
    blocks: list[np.ndarray] = []
    masks: list[np.ndarray | None] = []
    blocks.append(np.tile(np.array([len(tdef.columns)], dtype=">i2").view(np.uint8), (n, 1)))
    masks.append(None)
    for cdef in tdef.columns:
        col = cols[cdef.name]
        t = cdef.pgtype
        if t in ("text", "char"):
            codes, cats, null = _as_codes(col)
            enc = [str(c).encode("utf-8") for c in cats]
            lens = np.array([len(e) for e in enc], dtype=np.int64) if enc else np.zeros(1, np.int64)
            width = max(int(lens.max()), 1)
            catmat = np.zeros((max(len(enc), 1), width), dtype=np.uint8)
            for i, e in enumerate(enc):
                catmat[i, : len(e)] = np.frombuffer(e, dtype=np.uint8)
            rowlen = lens[codes]
            data = catmat[codes]
        else:
            null = col.null
            if t == "bigint":
                data, width = _be(col.values, ">i8", 8), 8
            elif t == "integer":
                data, width = _be(col.values, ">i4", 4), 4
            elif t == "boolean":
                data, width = col.values.astype(np.uint8).reshape(-1, 1), 1
            elif t == "timestamptz":
                data, width = _be(col.values.astype(np.int64) - _PG_EPOCH_US, ">i8", 8), 8
            elif t == "date":
                data, width = _be(col.values.astype(np.int64) - _PG_EPOCH_DAYS, ">i4", 4), 4
            elif t == "numeric":
                data, width = _numeric_bytes(col.values, cdef.scale), 16
            else:  # pragma: no cover - schema.py rejects other types
                raise ValueError(t)
            rowlen = np.full(n, width, dtype=np.int64)
        if null is not None and null.any():
            rowlen = np.where(null, -1, rowlen)
        blocks.append(_be(rowlen, ">i4", 4))
        masks.append(None)
        blocks.append(data)
        if (rowlen == data.shape[1]).all():
            masks.append(None)
        else:
            masks.append(np.arange(data.shape[1])[None, :] < rowlen[:, None])
    matrix = np.concatenate(blocks, axis=1)
    if all(m is None for m in masks):
        body = matrix.tobytes()
    else:
        mask = np.concatenate(
            [m if m is not None else np.ones((n, b.shape[1]), dtype=bool) for b, m in zip(blocks, masks)], axis=1
        )
        body = matrix[mask].tobytes()
    return COPY_HEADER + body + COPY_TRAILER
