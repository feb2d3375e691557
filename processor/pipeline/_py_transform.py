"""Python transformations in a worker thread that the time limit can interrupt.

CPython cannot stop a function from outside its thread, except by raising an exception in
that thread between two bytecodes (``PyThreadState_SetAsyncExc``). So ``transformEvent`` runs
in a worker thread while the caller waits up to ``timeout_ms``; past it, the caller raises
``_TimeLimit`` in the worker and waits a short grace for it to stop. A pure-Python loop or a
deep recursion stops there. Code blocked in C (``time.sleep``, a socket read) or code that
swallows ``BaseException`` does not: that worker is abandoned (counted, logged) and the next
event gets a fresh one. Either way the event fails with a reason naming the limit, and a
worker whose call overran is never reused: an interrupt raised late could otherwise land in
the next event's call.
"""

from __future__ import annotations

import _thread
import ctypes
import logging
import threading
from collections.abc import Callable

from processor.metrics import TRANSFORMATION_THREADS_ABANDONED
from processor.pipeline.transform import Document, EventFailedError, Metadata

logger = logging.getLogger(__name__)

# How long an interrupted call may take to stop before its thread is abandoned: a pure-Python
# loop stops within microseconds once the worker holds the GIL; this covers a busy machine.
STOP_GRACE_SECONDS = 0.25
# The interrupt is raised again this often during the grace: user code may catch it once.
INTERRUPT_EVERY_SECONDS = 0.01


class _TimeLimit(BaseException):
    """Raised in the worker thread when its call is over the time limit (a BaseException, so
    that ``except Exception`` in user code does not catch it)."""


class _Call:
    """One event's call: the worker fills ``result`` or ``failure`` and releases ``done``."""

    def __init__(self, event: Document, metadata: Metadata) -> None:
        self.event = event
        self.metadata = metadata
        self.result: object = None
        self.failure: str | None = None
        self.interrupted = False
        self.done = _thread.allocate_lock()  # C-level: nothing in it for an interrupt to hit
        self.done.acquire()

    def run(self, function: Callable[..., object]) -> None:
        try:
            try:
                self.result = function(self.event, lambda _event=None: self.metadata)
            except _TimeLimit:
                self.interrupted = True
            except BaseException as error:  # user code, SystemExit too: this event's dead letter
                self.failure = f"transformEvent raised {type(error).__name__}: {error}"
        except _TimeLimit:  # landed in a handler above
            self.interrupted = True
        finally:
            self.done.release()


class _Worker:
    """A daemon thread running one call at a time until a call is interrupted."""

    def __init__(self, function: Callable[..., object]) -> None:
        self._function = function
        self._call: _Call | None = None
        self._ready = _thread.allocate_lock()
        self._ready.acquire()
        self._thread = threading.Thread(target=self._serve, name="transformation", daemon=True)
        self._thread.start()

    def submit(self, call: _Call | None) -> None:
        """Run ``call`` next; None lets an idle worker end."""
        self._call = call
        self._ready.release()

    def interrupt(self) -> None:
        ident = self._thread.ident
        if ident is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(ident), ctypes.py_object(_TimeLimit)
            )

    def _serve(self) -> None:
        try:
            while True:
                self._ready.acquire()
                call = self._call
                if call is None:
                    return
                call.run(self._function)
                if call.interrupted:
                    return
        except _TimeLimit:  # an interrupt that came after its call ended: this worker is spent
            return


class PythonFunction:
    """``transformEvent`` from user Python code, failing any call over ``timeout_ms``."""

    def __init__(self, function: Callable[..., object], *, timeout_ms: int) -> None:
        self._function = function
        self._timeout_seconds = timeout_ms / 1000
        self._timeout_ms = timeout_ms
        self._worker = _Worker(function)

    def __call__(self, event: Document, metadata: Metadata) -> object:
        call = _Call(event, metadata)
        self._worker.submit(call)
        if not call.done.acquire(timeout=self._timeout_seconds):
            self._stop(call)
        if call.failure is not None:
            raise EventFailedError(call.failure)
        return call.result

    def _stop(self, call: _Call) -> None:
        """Interrupt the call, retire its worker; raise the event's failure."""
        worker, self._worker = self._worker, _Worker(self._function)
        over = (
            f"transformEvent ran over the {self._timeout_ms} ms limit (transformation.timeout_ms)"
        )
        waited = 0.0
        while waited < STOP_GRACE_SECONDS:
            worker.interrupt()
            if call.done.acquire(timeout=INTERRUPT_EVERY_SECONDS):
                worker.submit(None)  # ends the worker if the interrupt missed the call
                raise EventFailedError(over)
            waited += INTERRUPT_EVERY_SECONDS
        TRANSFORMATION_THREADS_ABANDONED.inc()
        logger.error(
            "transformation: a call over the time limit did not stop when interrupted"
            " (blocked in C code, or it catches BaseException); its thread is abandoned"
        )
        raise EventFailedError(
            f"{over}; it did not stop when interrupted and its thread was abandoned"
        )
