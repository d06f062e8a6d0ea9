"""What crosses the sandbox boundary, defined once: frames of JSON plus raw array bytes.

A frame is ``MAGIC``, the JSON header's length and the arrays' total length (8 bytes each, big
endian), the JSON header, then the arrays' bytes back to back. The header's ``"arrays"`` lists
``[key, dtype, shape]`` per array, in order; only plain numeric dtypes are accepted, so nothing
that crosses is ever unpickled or executed.

Messages (``"type"``):

* parent → runner: ``student`` (``jobs``: one per exercise, each ``{"name", "module",
  "files": {file name: source}, "calls": [call request], "limits"}``; the input arrays of job
  ``j`` travel with the key prefix ``"<j>/"``), ``quit``;
* runner → parent: ``hello`` (the runner is ready; ``isolation`` says what each worker gets),
  ``import`` (``job``, ``ok`` or ``error``), ``call`` (``job``, ``id``, the call's record, its
  arrays), ``done`` (the student's jobs are all finished);
* worker → runner: ``import`` and ``call`` without ``job`` (the runner knows which worker's pipe
  it read, and adds it).

A call request is ``{"function", "args": [spec], "kwargs": {name: spec}, "grad_wrt": [position],
"cotangents": [array key or None], "grad_mode": "inference" (optional)}`` with a spec
``{"array": key}`` or ``{"value": x}``. A call record is ``{"ok", "error", "error_kind",
"container", "outputs": [...], "grads": {position: key or None}, "grad_error", "modified",
"seconds"}`` (see ``rlkit_grader.records.Outcome.from_meta``). A worker runs the submission, so the
parent trusts no record: a frame's arrays only have the shape and dtype the frame announces, and
before any verdict ``rlkit_grader.judges.record_problem`` checks each one against what the record says
about it and what the check expects.

This file is imported by the runner inside the sandbox, so it needs only the standard library
and numpy.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

MAGIC = b"RLK1"
PREFIX = struct.Struct(">4sQQ")

#: size caps (bytes): one frame's JSON header, one call's arrays, one job's arrays in all
MAX_HEADER = 1 << 20
MAX_CALL_BYTES = 64 << 20
MAX_JOB_BYTES = 256 << 20
#: the most source a submission may send (all its files together)
MAX_SOURCE_BYTES = 4 << 20

_DTYPES = {
    np.dtype(t).str: np.dtype(t)
    for t in (
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    )
}


class ProtocolError(Exception):
    """The other side sent something that is not a valid frame (or too much of it)."""


def encode(message: Mapping[str, Any], arrays: Mapping[str, np.ndarray] | None = None) -> bytes:
    """One frame: ``message`` (JSON-able) and its arrays."""
    arrays = arrays or {}
    meta, blobs = [], []
    for key, value in arrays.items():
        a = np.asarray(value)  # (tobytes is C order; ascontiguousarray would make 0-d 1-d)
        if a.dtype.str not in _DTYPES:
            raise ProtocolError(f"array {key!r} has an unsupported dtype {a.dtype}")
        meta.append([str(key), a.dtype.str, list(a.shape)])
        blobs.append(a.tobytes())
    header = json.dumps({**message, "arrays": meta}).encode()
    body = b"".join(blobs)
    return PREFIX.pack(MAGIC, len(header), len(body)) + header + body


def _decode(header: bytes, body: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    try:
        message = json.loads(header)
    except ValueError as exc:
        raise ProtocolError(f"bad JSON ({exc})") from None
    if not isinstance(message, dict) or not isinstance(message.get("arrays", []), list):
        raise ProtocolError("a frame's header is not an object")
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for item in message.pop("arrays", []):
        try:
            key, dtype_str, shape = item
            dtype = _DTYPES[dtype_str]
            shape = tuple(int(s) for s in shape)
            if any(s < 0 for s in shape):
                raise ValueError
        except (TypeError, ValueError, KeyError):
            raise ProtocolError("a frame describes an array badly") from None
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        size = count * dtype.itemsize
        if offset + size > len(body):
            raise ProtocolError("a frame's arrays are shorter than announced")
        arrays[str(key)] = np.frombuffer(body, dtype, count, offset).reshape(shape).copy()
        offset += size
    if offset != len(body):
        raise ProtocolError("a frame has bytes no array accounts for")
    return message, arrays


class Reader:
    """Frames from a stream, read incrementally with size caps: never more than ``max_body``
    bytes of arrays per frame nor ``max_total`` in all, never a blocking read past a deadline."""

    def __init__(self, fd: int, max_body: int = MAX_CALL_BYTES, max_total: int | None = None):
        self.fd, self.max_body, self.max_total = fd, max_body, max_total
        self.buffer = bytearray()
        self.total = 0
        self.eof = False

    def _need(self) -> int | None:
        """Bytes still missing for the next frame (None: the prefix is not complete)."""
        if len(self.buffer) < PREFIX.size:
            return None
        magic, n_header, n_body = PREFIX.unpack_from(self.buffer)
        if magic != MAGIC:
            raise ProtocolError("not a frame (bad magic)")
        if n_header > MAX_HEADER or n_body > self.max_body:
            raise ProtocolError(f"a frame of {n_header + n_body} bytes is over the size cap")
        return PREFIX.size + n_header + n_body - len(self.buffer)

    def frames(self) -> Iterator[tuple[dict[str, Any], dict[str, np.ndarray]]]:
        """The complete frames now in the buffer."""
        while True:
            need = self._need()
            if need is None or need > 0:
                return
            _, n_header, n_body = PREFIX.unpack_from(self.buffer)
            start = PREFIX.size
            header = bytes(self.buffer[start : start + n_header])
            body = bytes(self.buffer[start + n_header : start + n_header + n_body])
            del self.buffer[: start + n_header + n_body]
            yield _decode(header, body)

    def feed(self) -> bool:
        """Read what is available now (the fd is readable); False at end of stream."""
        try:
            chunk = os.read(self.fd, 1 << 20)
        except BlockingIOError:
            return True
        if not chunk:
            self.eof = True
            return False
        self.total += len(chunk)
        if self.max_total is not None and self.total > self.max_total:
            raise ProtocolError(f"more than {self.max_total} bytes in all")
        self.buffer += chunk
        self._need()  # fail early on a bad or oversized prefix
        return True

    def read(self, deadline: float) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """The next frame, or None at end of stream; TimeoutError at the deadline."""
        while True:
            for frame in self.frames():
                return frame
            if self.eof:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer before the deadline")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                self.feed()


def write_all(fd: int, data: bytes, deadline: float | None = None) -> None:
    """Write every byte (waiting for the reader at most until ``deadline``)."""
    view = memoryview(data)
    while view:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the other side stopped reading")
            select.select([], [fd], [], left)
        try:
            n = os.write(fd, view[: 1 << 20])
        except BlockingIOError:
            continue
        view = view[n:]
