"""``LabelDirectory``: ticket label names → ids, read from Trengo once per process.

Plans name labels (``eventTemplateMap[].labels``); Trengo attaches them by id. The directory
reads every page of ``GET /labels`` the first time a plan needs a label, and answers from
memory after that. Names match case-insensitively; when two labels share a name, the first one
Trengo lists wins. A name it does not know makes it read the list again, at most once per
``REFRESH_INTERVAL_SECONDS`` (a label just added in Trengo is found; a typo in the config does
not cost a listing per event); still unknown → ``PermanentError``, before any ticket is opened.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable

from processor.trengo import endpoints
from processor.trengo.client import JsonObject, TrengoClient, id_of
from processor.trengo.endpoints import TrengoId
from processor.trengo.errors import PermanentError

REFRESH_INTERVAL_SECONDS = 60.0


class LabelDirectory:
    """Label ids by name (casefolded); one per API token, shared by all delivery workers."""

    def __init__(
        self,
        client: TrengoClient,
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh_interval_seconds: float = REFRESH_INTERVAL_SECONDS,
    ) -> None:
        self._client = client
        self._clock = clock
        self._refresh_interval = refresh_interval_seconds
        self._read: tuple[float, dict[str, TrengoId]] | None = None  # (when, ids by name)
        self._loading = asyncio.Lock()

    async def ids(self, names: Iterable[str]) -> tuple[TrengoId, ...]:
        """The ids of the labels ``names``, in order, each once.

        Raises PermanentError naming the first label Trengo does not have.
        """
        wanted: dict[str, str] = {}  # casefolded → as the config spells it
        for name in names:
            wanted.setdefault(name.casefold(), name)
        if not wanted:
            return ()
        known = await self._loaded(max_age=math.inf)
        if not wanted.keys() <= known.keys():
            known = await self._loaded(max_age=self._refresh_interval)
        missing = [spelled for key, spelled in wanted.items() if key not in known]
        if missing:
            raise PermanentError(f"label '{missing[0]}' not found in Trengo")
        return tuple(dict.fromkeys(known[key] for key in wanted))

    async def _loaded(self, max_age: float) -> dict[str, TrengoId]:
        """The directory, read again first unless it is younger than ``max_age`` seconds."""
        if (known := self._younger_than(max_age)) is not None:
            return known
        async with self._loading:  # concurrent plans wait for one listing instead of each doing it
            if (known := self._younger_than(max_age)) is not None:
                return known
            labels = await self._client.every_page(endpoints.list_labels)
            known = _ids_by_name(labels)
            self._read = (self._clock(), known)
            return known

    def _younger_than(self, max_age: float) -> dict[str, TrengoId] | None:
        if self._read is None:
            return None
        read_at, known = self._read
        return known if self._clock() - read_at < max_age else None


def _ids_by_name(labels: Iterable[JsonObject]) -> dict[str, TrengoId]:
    ids: dict[str, TrengoId] = {}
    for label in labels:
        name, label_id = label.get("name"), id_of(label)
        if isinstance(name, str) and label_id is not None:
            ids.setdefault(name.casefold(), label_id)
    return ids
