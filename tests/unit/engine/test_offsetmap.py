"""The done-offset map in the commit metadata: round trips, the 4 KB cap, hostile metadata."""

from __future__ import annotations

import base64

import pytest

from processor.engine import offsetmap


@pytest.mark.parametrize(
    ("position", "done", "encoding"),
    [
        pytest.param(0, set(), "b", id="nothing-done"),
        pytest.param(10, {11}, "b", id="right-above"),
        pytest.param(10, {12, 13, 14, 20}, "b", id="gaps-dense"),
        pytest.param(0, set(range(1, 5000)), "r", id="one-long-run"),
        pytest.param(100, {101, 5_000, 90_000}, "r", id="sparse-far-apart"),
        pytest.param(7, set(range(8, 2000, 2)), "b", id="every-other-offset"),
        pytest.param(2**40, {2**40 + 3, 2**40 + 4}, "b", id="large-offsets"),
    ],
)
def test_done_offsets_round_trip_in_the_shorter_encoding(
    position: int, done: set[int], encoding: str
) -> None:
    metadata = offsetmap.encode(position, done)

    assert metadata.startswith(offsetmap.VERSION + encoding)
    assert len(metadata.encode()) <= offsetmap.MAX_METADATA_BYTES
    assert offsetmap.decode(position, metadata) == frozenset(done)


def test_offsets_at_or_below_the_position_are_not_encoded() -> None:
    assert offsetmap.decode(10, offsetmap.encode(10, {5, 10, 12})) == {12}


@pytest.mark.parametrize(
    ("done", "limit"),
    [
        # Alternating done/not-done: both encodings grow with every offset.
        pytest.param(set(range(1, 200_000, 2)), offsetmap.MAX_METADATA_BYTES, id="4kb-bitset"),
        pytest.param(
            {offset * 97 for offset in range(1, 20_000)},
            offsetmap.MAX_METADATA_BYTES,
            id="4kb-runs",
        ),
        pytest.param(set(range(1, 400, 3)), 40, id="tiny-cap"),
    ],
)
def test_past_the_cap_the_lowest_done_offsets_that_fit_are_kept(done: set[int], limit: int) -> None:
    metadata = offsetmap.encode(0, done, limit=limit)
    kept = offsetmap.decode(0, metadata)

    assert len(metadata.encode()) <= limit
    assert kept is not None and 0 < len(kept) < len(done)
    cut = max(kept)
    assert kept == {offset for offset in done if offset <= cut}  # a prefix: nothing skipped
    # One more offset would not have fitted (the cap wraps right after the kept prefix).
    next_offset = min(offset for offset in done if offset > cut)
    assert len(offsetmap.encode(0, kept | {next_offset}, limit=10**9)) > limit


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param(None, id="dropped-by-broker"),
        pytest.param("", id="empty"),
        pytest.param("some other tool's note", id="foreign"),
        pytest.param("2b" + offsetmap.encode(10, {12})[2:], id="another-version"),
        pytest.param("1", id="version-only"),
        pytest.param("1x" + "AAAA", id="unknown-encoding"),
        pytest.param("1b" + "!!!!", id="not-base64"),
        pytest.param("1r" + base64.urlsafe_b64encode(b"\x05").decode(), id="runs-end-not-done"),
        pytest.param("1r" + base64.urlsafe_b64encode(b"\x80").decode(), id="truncated-varint"),
        pytest.param("1r" + base64.urlsafe_b64encode(b"\xff" * 10 + b"\x01").decode(), id="huge"),
        pytest.param(
            "1r" + base64.urlsafe_b64encode(b"\x00\xff\xff\xff\x7f").decode(), id="too-many-done"
        ),
    ],
)
def test_metadata_that_is_not_a_done_map_skips_nothing(
    metadata: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    assert offsetmap.decode(10, metadata) is None
    # Anything but no metadata at all is hostile or foreign input: said, never fatal.
    assert ("not a done-offset map" in caplog.text) == bool(metadata)
