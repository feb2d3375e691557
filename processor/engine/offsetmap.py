"""Done offsets above the commit point, carried in the offset commit's metadata.

Only the contiguous done prefix of a partition can be committed; events done beyond the first
unfinished one would be redelivered to the partition's next owner. Like Confluent's Parallel
Consumer (``OffsetMapCodecManager``), the committer also writes which offsets above the
committed position are already done, and the next owner skips them.

The metadata text is ``VERSION`` + an encoding letter + unpadded URL-safe base64 of the payload.
Offsets are relative to the committed position ``p``: bit/offset ``i`` stands for ``p + 1 + i``
(``p`` itself is never done, else it would have been committed). Two encodings, the shorter wins:

* ``b`` bitset: bit ``i`` (byte ``i // 8``, bit ``i % 8``) set when ``p + 1 + i`` is done.
* ``r`` run lengths: LEB128 varints, alternately a run of not-done and a run of done offsets,
  starting with not-done (possibly 0) and ending with a done run.

Kafka refuses metadata above ``offset.metadata.max.bytes`` (4096 by default): past that the
encoder keeps the lowest done offsets that fit, so the rest is redelivered, as without metadata.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterable

logger = logging.getLogger(__name__)

VERSION = "1"
BITSET = "b"
RUNS = "r"
MAX_METADATA_BYTES = 4096
# A run-length map could claim any number of done offsets; more than this is not ours.
MAX_DECODED_OFFSETS = 1_000_000


def encode(position: int, done: Iterable[int], limit: int = MAX_METADATA_BYTES) -> str:
    """Metadata for a commit at ``position`` remembering the ``done`` offsets above it."""
    relative = sorted(offset - position - 1 for offset in done if offset > position)
    text = _shorter(relative)
    if len(text) <= limit:
        return text
    # Keep the longest prefix that fits: the encodings only grow with more offsets.
    fits, too_many = 0, len(relative)
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        if len(_shorter(relative[:middle])) <= limit:
            fits = middle
        else:
            too_many = middle
    return _shorter(relative[:fits])


def decode(position: int, metadata: str | None) -> frozenset[int] | None:
    """The done offsets above ``position``; None when there is no map (or it is not ours)."""
    if not metadata:
        return None
    try:
        relative = _decoded(metadata)
    except (ValueError, binascii.Error) as error:
        logger.warning("ignoring offset metadata that is not a done-offset map: %s", error)
        return None
    return frozenset(position + 1 + offset for offset in relative)


def _decoded(metadata: str) -> list[int]:
    if not metadata.startswith(VERSION) or len(metadata) < len(VERSION) + 1:
        raise ValueError(f"not version {VERSION}: {metadata[:20]!r}")
    kind, body = metadata[len(VERSION)], metadata[len(VERSION) + 1 :]
    payload = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
    if kind == BITSET:
        return _bits_decoded(payload)
    if kind == RUNS:
        return _runs_decoded(payload)
    raise ValueError(f"unknown encoding {kind!r}")


def _shorter(relative: list[int]) -> str:
    bits = VERSION + BITSET + _b64(_bits(relative))
    runs = VERSION + RUNS + _b64(_runs(relative))
    return runs if len(runs) < len(bits) else bits


def _b64(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode("ascii").rstrip("=")


def _bits(relative: list[int]) -> bytes:
    if not relative:
        return b""
    field = bytearray(relative[-1] // 8 + 1)
    for offset in relative:
        field[offset // 8] |= 1 << (offset % 8)
    return bytes(field)


def _bits_decoded(payload: bytes) -> list[int]:
    return [
        index * 8 + bit
        for index, byte in enumerate(payload)
        if byte
        for bit in range(8)
        if byte >> bit & 1
    ]


def _runs(relative: list[int]) -> bytes:
    lengths: list[int] = []
    expected = 0  # the next relative offset after the last run
    for offset in relative:
        if offset == expected and lengths:
            lengths[-1] += 1
        else:
            lengths += [offset - expected, 1]
        expected = offset + 1
    return b"".join(_varint(length) for length in lengths)


def _runs_decoded(payload: bytes) -> list[int]:
    lengths = _varints(payload)
    if len(lengths) % 2:
        raise ValueError("run-length map does not end with a done run")
    if sum(lengths[1::2]) > MAX_DECODED_OFFSETS:
        raise ValueError("run-length map claims too many done offsets")
    relative: list[int] = []
    start = 0
    for skipped, done in zip(lengths[::2], lengths[1::2], strict=True):
        start += skipped
        relative.extend(range(start, start + done))
        start += done
    return relative


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _varints(payload: bytes) -> list[int]:
    values: list[int] = []
    value = shift = 0
    for byte in payload:
        value |= (byte & 0x7F) << shift
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")
        if not byte & 0x80:
            values.append(value)
            value = shift = 0
    if shift:
        raise ValueError("truncated varint")
    return values
