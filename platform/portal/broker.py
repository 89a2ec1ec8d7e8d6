"""Celery's filesystem broker (the embedded default under var/), with each message written whole before it is seen.

Kombu's filesystem transport creates a message file and then writes into it. A worker that lists the folder in
between moves the still-empty file away, fails to decode it and stops (`JSONDecodeError: Expecting value: line 1
column 1`, celery/kombu#1551), and with it `make run`. Here a message is written under a name that consumers skip
(they take only `<id>.<queue>.msg`) and renamed into place once complete; a rename within a folder is atomic.
"""

import os
import uuid
from time import monotonic
from typing import Any

from kombu.transport import filesystem
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    # kombu's own filesystem Channel already departs from the base signature (payload, not message).
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        folder = self.data_folder_out
        partial = os.path.join(folder, f".{name}.part")
        with open(partial, "wb") as file:
            file.write(dumps(payload).encode())
        os.replace(partial, os.path.join(folder, name))


class Transport(filesystem.Transport):
    Channel = Channel
