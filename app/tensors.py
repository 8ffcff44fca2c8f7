"""Tensors of the Open Inference Protocol: datatypes, and arrays from and to the protocol's encodings.

A tensor reaches the server in one of three encodings, whatever the transport: values (the JSON `data`
of REST, flat or nested row-major, or gRPC's typed `contents`), or raw bytes (the binary tensor data
extension of REST, gRPC's `raw_input_contents`): little-endian, row-major, no padding. `Incoming` is
one such input as decoded by its transport; `array(incoming)` turns it into a numpy array of its
datatype, refusing data that does not fill the shape exactly (a byte count that is not shape ×
datatype size, a value count that is not the shape's) or values the datatype cannot hold (a fraction
or 2^63 for INT64, 1e39 for FP32), naming the element as `NAME[i][j]`. What a model does with the
values (finite, positive prices) is the model's rule, not the tensor's (`app/inference.py`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import BadRequest

# The protocol's fixed-size datatypes, as little-endian numpy types. BYTES (length-prefixed strings)
# and BF16 (no numpy type) are known names that no model of this service takes.
DTYPES: dict[str, np.dtype[Any]] = {name: np.dtype(code) for name, code in {
    "BOOL": "?", "UINT8": "u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "INT8": "i1",
    "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}.items()}
KNOWN = (*DTYPES, "BF16", "BYTES")
MAX_RANK = 8


@dataclass(frozen=True)
class Incoming:
    """An input tensor as its transport decoded it: values (row-major, flat or nested) or raw bytes."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: bytes | Sequence[Any]
    parameters: dict[str, Any]


def check_shape(name: str, shape: Sequence[float]) -> tuple[int, ...]:
    """A shape as whole non-negative dimensions (JSON may spell 2 as 2.0)."""
    if len(shape) > MAX_RANK:
        raise BadRequest(f"input {name}: shape {list(shape)} has {len(shape)} dimensions; at most {MAX_RANK}")
    dims = []
    for d in shape:
        if not (isinstance(d, int | float) and math.isfinite(d) and d == int(d) and d >= 0):
            raise BadRequest(f"input {name}: shape {list(shape)} holds {d!r}; give whole dimensions ≥ 0")
        dims.append(int(d))
    return tuple(dims)


def element(name: str, shape: tuple[int, ...], flat: int) -> str:
    """`NAME[i][j]` for the row-major position `flat` of a tensor of this shape."""
    return name + "".join(f"[{int(i)}]" for i in np.unravel_index(flat, shape))


def array(t: Incoming) -> np.ndarray:
    """The tensor as an array of its datatype and shape; BadRequest naming what does not fit."""
    dtype = DTYPES[t.datatype]
    count = math.prod(t.shape)
    if isinstance(t.data, bytes | bytearray | memoryview):
        need = count * dtype.itemsize
        if len(t.data) != need:
            raise BadRequest(f"input {t.name}: {len(t.data)} bytes of binary data; shape {list(t.shape)} of "
                             f"{t.datatype} needs {need} ({count} × {dtype.itemsize} bytes)")
        return np.frombuffer(t.data, dtype=dtype).reshape(t.shape)
    return _from_values(t, dtype, count)


def _from_values(t: Incoming, dtype: np.dtype[Any], count: int) -> np.ndarray:
    wide = np.float64 if dtype.kind in "fiu" else dtype
    try:
        values = np.asarray(t.data, dtype=wide)
    except (ValueError, TypeError):
        raise BadRequest(f"input {t.name}: give data flat or nested as the shape {list(t.shape)}, rows "
                         "of the same length, numbers only") from None
    if values.size != count:
        raise BadRequest(f"input {t.name}: holds {values.size} values; shape {list(t.shape)} needs {count}")
    flat = values.ravel()
    if dtype.kind == "f":
        limit = float(np.finfo(dtype).max)
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(np.abs(flat) > limit)  # NaN and infinities are the model's to judge
        if bad.size:
            raise BadRequest(f"{element(t.name, t.shape, int(bad[0]))} is beyond {t.datatype}'s range (got "
                             f"{float(flat[bad[0]])!r}); send values less than or equal to {limit!r} in "
                             "magnitude")
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        # float64 holds every integer up to 2^53 exactly; beyond, values are refused rather than rounded.
        lo, hi = max(float(info.min), -(2.0**53)), min(float(info.max), 2.0**53)
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(~((flat >= lo) & (flat <= hi) & (np.floor(flat) == flat)))
        if bad.size:
            raise BadRequest(f"{element(t.name, t.shape, int(bad[0]))} is not a whole number {t.datatype} "
                             f"holds (got {float(flat[bad[0]])!r}); send integers in [{lo:.0f}, {hi:.0f}]")
    return flat.astype(dtype).reshape(t.shape)


def raw(values: np.ndarray) -> bytes:
    """Little-endian, row-major bytes, as the binary extension and gRPC's raw contents carry them."""
    return np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<")).tobytes()


def datatype(values: np.ndarray) -> str:
    kind = np.dtype(values.dtype).newbyteorder("<")
    return next(name for name, dtype in DTYPES.items() if dtype == kind)
