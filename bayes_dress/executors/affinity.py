"""Key affinity: which task a free worker runs next, so that keys are prepared few times."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Hashable

#: A worker with nothing of its own left prepares a key another worker holds when at
#: least this many of that key's tasks are still waiting: preparing it again (for a
#: compiled model, a load from the disk cache of about 1 s, a few fits' time) beats
#: leaving a core idle while the other worker works through them alone.
DUPLICATE_AFTER = 4


class KeyAffinity:
    """The tasks waiting to run, by key, and the keys each worker holds.

    A free worker is given, in this order of preference, a task of a key it already
    holds (or one with key None), then one of a key no worker holds, then one of a key
    with at least ``duplicate_after`` tasks waiting; within each, the key with most tasks
    waiting. Otherwise it stays idle: every key with tasks waiting is then held by a busy
    worker, which will take them, so every task runs.

    Parameters
    ----------
    duplicate_after : int, optional
        See :data:`DUPLICATE_AFTER`.
    """

    def __init__(self, *, duplicate_after: int = DUPLICATE_AFTER) -> None:
        self.duplicate_after = duplicate_after
        self._pending: dict[Hashable | None, deque[int]] = defaultdict(deque)
        #: The keys each worker holds (has prepared, or been sent a task of).
        self.held: dict[Hashable, set[Hashable]] = defaultdict(set)
        self._waiting = 0

    def __len__(self) -> int:
        """How many tasks are waiting."""
        return self._waiting

    def add(self, index: int, key: Hashable | None, *, first: bool = False) -> None:
        """Queue task ``index`` with ``key`` (at the front of its key's queue if ``first``)."""
        queue = self._pending[key]
        queue.appendleft(index) if first else queue.append(index)
        self._waiting += 1

    def hold(self, worker: Hashable, key: Hashable | None) -> None:
        """Record that ``worker`` holds ``key``."""
        if key is not None:
            self.held[worker].add(key)

    def forget(self, worker: Hashable) -> None:
        """Forget a worker that has gone, and the keys it held."""
        self.held.pop(worker, None)

    def next_for(self, worker: Hashable, *, own_only: bool = False) -> int | None:
        """The task ``worker`` should run next (marking its key as held), or None.

        Parameters
        ----------
        worker : hashable
            The free worker's identity.
        own_only : bool, optional
            Only a task of a key it holds (or with key None): for a task to queue on a
            busy worker, leaving other keys to whichever worker frees up first.

        Returns
        -------
        int or None
            The task's index, removed from the queue.
        """
        ready = [k for k, queue in self._pending.items() if queue]
        if not ready:
            return None
        mine = self.held[worker]
        own = [k for k in ready if k is None or k in mine]
        fresh = [k for k in ready if not any(k in h for h in self.held.values())]
        crowded = [k for k in ready if len(self._pending[k]) >= self.duplicate_after]
        for choice in (own,) if own_only else (own, fresh, crowded):
            if choice:
                key = max(choice, key=lambda k: len(self._pending[k]))
                self.hold(worker, key)
                self._waiting -= 1
                return self._pending[key].popleft()
        return None
