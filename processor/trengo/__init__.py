"""Trengo: the request builders, the rate-limited client, contact resolution, profiles, labels,
ticket follow-ups and the executor that carries out a plan. Import from here; the modules
behind it are the implementation."""

from processor.trengo.client import TrengoClient
from processor.trengo.contacts import ContactCache, SentNames, exact_matches
from processor.trengo.delivery import DeliveryResult, PlanExecutor
from processor.trengo.endpoints import TrengoRequest, url
from processor.trengo.errors import (
    DestinationDown,
    Forbidden,
    PermanentError,
    TransientError,
    TrengoError,
    classify,
)
from processor.trengo.ratelimit import RateLimiter

__all__ = [
    "ContactCache",
    "DeliveryResult",
    "DestinationDown",
    "Forbidden",
    "PermanentError",
    "PlanExecutor",
    "RateLimiter",
    "SentNames",
    "TransientError",
    "TrengoClient",
    "TrengoError",
    "TrengoRequest",
    "classify",
    "exact_matches",
    "url",
]
