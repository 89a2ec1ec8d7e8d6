"""The embedded broker: kombu's filesystem transport, with messages that are never seen half-written."""

import pytest
from kombu import Connection

TRANSPORT = "portal.broker:Transport"


@pytest.fixture
def connection(tmp_path):  # type: ignore[no-untyped-def]
    options = {
        "data_folder_in": str(tmp_path),
        "data_folder_out": str(tmp_path),
        "control_folder": str(tmp_path / "control"),
        "store_processed": False,
    }
    with Connection("filesystem://", transport=TRANSPORT, transport_options=options) as connection:
        yield connection


def test_a_message_appears_whole_and_is_delivered(connection, tmp_path) -> None:
    queue = connection.SimpleQueue("runway-test")
    queue.put({"deployment": 7, "version": 3})

    files = [path.name for path in tmp_path.iterdir() if path.is_file()]
    assert len(files) == 1 and files[0].endswith(".runway-test.msg") and not files[0].startswith(".")
    message = queue.get(timeout=1)
    assert message.payload == {"deployment": 7, "version": 3}
    message.ack()
    queue.close()


def test_a_message_still_being_written_is_not_taken(connection, tmp_path) -> None:
    # What a worker would have found mid-write with kombu's own transport: an empty file with a message's name.
    (tmp_path / ".1_abc.runway-test.msg.part").write_bytes(b"")
    queue = connection.SimpleQueue("runway-test")

    with pytest.raises(queue.Empty):
        queue.get(timeout=0.2)
    assert (tmp_path / ".1_abc.runway-test.msg.part").exists()
    queue.close()
