"""Trengo: the destination. What the rest of the processor uses of it is imported from here;
the modules behind it are the implementation (tests may reach into them).

* ``TrengoClient`` sends ``endpoints`` requests, rate-limited and measured; ``PlanExecutor``
  carries out a plan with it; ``TokenRotation`` and ``token_reader`` hand it a rotated token.
* ``endpoints`` builds every request the processor sends (one function per endpoint).
* ``TrengoError`` and ``DestinationDown`` are the failures callers outside delivery tell apart.
"""

from processor.trengo import endpoints
from processor.trengo.catalog import by_id
from processor.trengo.client import JsonObject, TrengoClient
from processor.trengo.delivery import PlanExecutor
from processor.trengo.errors import DestinationDown, TrengoError
from processor.trengo.labels import REFRESH_INTERVAL_SECONDS
from processor.trengo.token import TokenRotation, token_reader

__all__ = [
    "REFRESH_INTERVAL_SECONDS",
    "DestinationDown",
    "JsonObject",
    "PlanExecutor",
    "TokenRotation",
    "TrengoClient",
    "TrengoError",
    "by_id",
    "endpoints",
    "token_reader",
]
