"""Signals: SIGTERM as an exception in a parent, and worker processes that die with it."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

#: Linux's prctl option asking for a signal when the parent dies (<linux/prctl.h>).
_PR_SET_PDEATHSIG = 1
#: How often a worker's watchdog thread checks that its parent is still there.
WATCHDOG_SECONDS = 0.5


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Inside, SIGTERM raises ``SystemExit(143)`` in the main thread, as Ctrl-C raises
    KeyboardInterrupt, so ``finally`` blocks (stopping workers) run and the caller can
    exit cleanly. Does nothing off the main thread, or where SIGTERM already has a
    handler other than the default (the caller's own policy stands).
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return

    def raise_exit(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, raise_exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def die_with_parent(parent_pid: int, *, use_prctl: bool = True) -> None:
    """Make this (worker) process exit soon after its parent dies, even by SIGKILL.

    On Linux, the kernel sends SIGTERM when the parent dies (``PR_SET_PDEATHSIG``,
    immediate); everywhere, a daemon thread checks every :data:`WATCHDOG_SECONDS` that
    the parent is still this process's parent and exits at once if not.

    Parameters
    ----------
    parent_pid : int
        The parent's process id, as the parent saw it before starting this process.
    use_prctl : bool, optional
        Whether to ask the kernel too. ``PR_SET_PDEATHSIG`` fires when the *thread* that
        started this process exits, so only a parent that starts workers from its main
        thread should ask for it.
    """
    if use_prctl and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before we could ask
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(WATCHDOG_SECONDS)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="bayes-dress-parent-watchdog", daemon=True).start()
