"""What a Ctrl-C or a SIGTERM may do while Ray starts or ends, and what keeps it from
leaving Ray half made: signals held back while the driver's core worker is made, ignored
while Ray shuts down, and a process's own SIGTERM handler kept past Ray's.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

import ray


def in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def interrupts_ignored() -> Iterator[None]:
    """Neither a Ctrl-C nor a SIGTERM in the block: both would leave Ray half ended."""
    if not in_main_thread():  # only the main thread may set handlers (and gets SIGINT)
        yield
        return
    previous = [signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)]
    try:
        yield
    finally:
        for s, handler in zip((signal.SIGINT, signal.SIGTERM), previous):
            signal.signal(s, handler)


NO_FAILURE_HANDLER = "RAY_DISABLE_FAILURE_SIGNAL_HANDLER"


@contextlib.contextmanager
def sigterm_kept() -> Iterator[None]:
    """Keep the SIGTERM handler a process chose through ray.init(), as for SIGINT.

    ray.init() sets handlers of its own: the driver's exits 15 and the head node's ends
    Ray's processes and exits 1, wherever in the start the signal lands (processes were
    left running), and the core worker's, in C++, printed a stack and aborted the driver
    (exit 134). A process that set a handler (the CLI's ends the run as a second Ctrl-C
    does) keeps it, through the start too: core_worker_uninterrupted holds it back while
    the core worker is made, and connection._abandon_start cleans up as after a Ctrl-C.
    One that did not keeps Ray's.
    """
    previous = signal.getsignal(signal.SIGTERM)
    if not in_main_thread() or not callable(previous):
        yield
        return
    utils, constants = ray._private.utils, ray._private.ray_constants
    set_handler = utils.set_sigterm_handler
    failure_handler = getattr(constants, NO_FAILURE_HANDLER, False)
    utils.set_sigterm_handler = lambda handler: None
    setattr(constants, NO_FAILURE_HANDLER, True)  # CoreWorker reads it as it starts
    try:
        yield
    finally:
        utils.set_sigterm_handler = set_handler
        setattr(constants, NO_FAILURE_HANDLER, failure_handler)
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def core_worker_uninterrupted() -> Iterator[None]:
    """Hold a Ctrl-C back from the moment ray.init() makes the driver's core worker until
    the block ends, and raise it then.

    ray.init() makes it in one call, ray._raylet.CoreWorker(...), which starts the C++
    core worker and then runs Python code (a GC thread's __init__), 0.3-0.5 s on 2 cores.
    A KeyboardInterrupt raised in there, before ray.init() stores the object, leaves a
    C++ core worker that ray.shutdown() cannot reach. It was destroyed at exit, after
    Python's finalization: its last flush of task events to the (killed) GCS looked for
    the auth token, which connection._abandon_start had taken out of the environment, and Ray's
    fatal error for that is reported as an event, which logs a fatal error again, and so
    on: the driver spun at 100% CPU after "error: interrupted" until its stack overflowed
    (issue 12; one Ctrl-C that lands there is enough, a second one is not needed; with the
    token kept it crashed instead). Held back, the Ctrl-C lands once ray.init() has
    returned a whole connection, which ray.shutdown() ends as after any start. A SIGTERM
    there is held back too: Ray's handler exits by raising SystemExit, and the CLI's by
    raising Terminated, which crashed the driver at exit the same way (exit 139).
    """
    raylet = ray._raylet
    make = getattr(raylet, "CoreWorker", None)
    if make is None or not in_main_thread():  # only the main thread gets SIGINT
        yield
        return
    held: list[int] = []
    previous: dict[int, Any] = {}

    def core_worker(*args: Any, **kwargs: Any) -> Any:
        if not previous:
            for sig in (signal.SIGINT, signal.SIGTERM):  # SIGTERM's handler raises too
                previous[sig] = signal.signal(sig, lambda signum, _: held.append(signum))
        return make(*args, **kwargs)

    raylet.CoreWorker = core_worker
    try:
        yield
    finally:
        raylet.CoreWorker = make
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(held):
            signal.raise_signal(sig)  # to the handler it was held back from
