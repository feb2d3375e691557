"""Signals: the first SIGTERM/SIGINT starts a graceful shutdown, a second one exits at once.

Exiting at once loses nothing: events that were not committed are redelivered on restart.
"""

from __future__ import annotations

import asyncio
import signal

FORCED_EXIT_CODE = 130


def install_stop_signals(stop: asyncio.Event) -> None:
    """Set ``stop`` on the first SIGTERM/SIGINT; raise SystemExit on the second."""
    loop = asyncio.get_running_loop()

    def request_stop() -> None:
        if stop.is_set():
            raise SystemExit(FORCED_EXIT_CODE)
        stop.set()

    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, request_stop)
