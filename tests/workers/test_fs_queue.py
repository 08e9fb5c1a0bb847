"""The embedded queue writes each message whole: a reader never sees a half-written one."""

from __future__ import annotations

import os
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from kombu import Connection

import workers._fs_queue as fs_queue
from bot.config import load_settings
from workers.celery_app import broker_settings


def channel(folder: Path) -> Any:
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder)}
    connection = Connection(
        "filesystem://localhost/",
        transport="workers._fs_queue:Transport",
        transport_options={**options, "store_processed": False},
    )
    return connection.default_channel


def test_a_message_being_written_is_not_read(tmp_path: Path, monkeypatch) -> None:
    """Regression: kombu wrote in place, so a reader could take an empty file and the
    worker died on it ("Unrecoverable error: JSONDecodeError"), stopping `opsloop run`."""
    chan = channel(tmp_path)
    seen_mid_write: list[object] = []
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:
        # The moment between writing and publishing: a reader polls now.
        assert Path(src).read_bytes(), "the message is complete before it is published"
        try:
            seen_mid_write.append(chan._get("celery"))
        except Empty:
            seen_mid_write.append(None)
        real_replace(src, dst)

    monkeypatch.setattr(fs_queue.os, "replace", replace)
    chan._put("celery", {"body": "hello"})
    assert seen_mid_write == [None]  # nothing was there to read yet
    assert chan._get("celery") == {"body": "hello"}
    with pytest.raises(Empty):
        chan._get("celery")
    assert list(tmp_path.iterdir()) == []


def test_the_embedded_queue_uses_the_atomic_transport(tmp_path: Path) -> None:
    conf = broker_settings(load_settings(OPSLOOP_HOME=str(tmp_path)))
    assert conf["broker_transport"] == "workers._fs_queue:Transport"
    # Reconfigured for Redis (conf.update keeps old keys), the URL decides again.
    redis = broker_settings(load_settings(OPSLOOP_HOME=str(tmp_path), REDIS_URL="redis://x:1/0"))
    assert redis["broker_transport"] is None
    connection = Connection(redis["broker_url"], transport=redis["broker_transport"])
    assert type(connection.transport).__module__ == "kombu.transport.redis"
