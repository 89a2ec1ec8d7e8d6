"""What a process remembers for a while: the most recently used entries, each for a number of seconds."""

import threading
import time
from collections import OrderedDict
from typing import Any


class Recent:
    """A small thread-safe memo: the `kept` most recently used entries, each answered for `seconds` after it was put.
    For values that are cheap to be a little stale and dear to ask for (a planner's estimate, a search's mode)."""

    def __init__(self, *, kept: int, seconds: float) -> None:
        self.kept, self.seconds = kept, seconds
        self._entries: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        """The value put for `key` within the last `seconds`, or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or time.monotonic() - entry[0] > self.seconds:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.kept:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
