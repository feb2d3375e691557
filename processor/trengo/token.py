"""Token rotation: re-read the API token from where it came, so a new Secret needs no restart.

A token from ``TRENGO_API_TOKEN`` or ``trengo.api_token_file`` (the chart's mounted Secret)
can change while the processor runs. ``TokenRotation.reload`` reads the source again and
hands a different token to the client; the engine calls it on a 401 before halting, and the
halted destination's probe calls it before every probe. A token written in the YAML config
cannot change, and reload then never finds a new one. Surrounding whitespace (the newline an
editor or ``echo`` leaves in a Secret) is not part of a token.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from processor.config import TOKEN_ENV, Settings
from processor.logging import redact_from_now_on
from processor.trengo.client import TrengoClient

logger = logging.getLogger(__name__)

TokenReader = Callable[[], str | None]


def token_reader(settings: Settings) -> TokenReader | None:
    """How to read the token again: the source the running token came from, else None."""
    sources: list[TokenReader] = [_environment_token]
    token_file = settings.trengo.api_token_file
    if token_file is not None:
        sources.append(lambda: _file_token(token_file))
    for read in sources:
        if read() == settings.api_token:
            return read
    return None


class TokenRotation:
    """Re-reads the token source and gives the client a token that changed."""

    def __init__(self, client: TrengoClient, read: TokenReader | None) -> None:
        self._client = client
        self._read = read

    def reload(self) -> bool:
        """True when the source now holds a different (non-empty) token, which is in use."""
        if self._read is None:
            return False
        token = self._read()
        if not token or token == self._client.token:
            return False
        self._client.use_token(token)
        redact_from_now_on(token)
        logger.warning("API token re-read from its source: using the new token")
        return True


def _environment_token() -> str | None:
    return os.environ.get(TOKEN_ENV, "").strip() or None


def _file_token(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None  # mid-rotation or unreadable: keep the token in use
