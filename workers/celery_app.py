"""The Celery app: broker configuration and the tasks, thin wrappers over :mod:`workers.jobs`.

Production uses Redis (``REDIS_URL``). With no broker configured, an embedded file-system
queue under ``OPSLOOP_HOME`` carries the very same messages between processes: no server,
same tasks, same JSON serialisation (not eager mode).

Reliability settings are deliberate: late acks with reject-on-worker-lost (a task whose
worker dies is given to another), prefetch 1 (a worker holds no queue of work it may never
do), and a visibility timeout longer than any task. None of it is relied on for
correctness: the database inbox is the truth and the sweeper re-enqueues what was lost.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from celery import Celery, signals
from celery.schedules import crontab

from bot.app import Opsloop, ThreadBusyError
from bot.config import Settings, load_settings
from bot.plugins import Sender, load_plugins
from bot.policy import load_policy
from workers import jobs

__all__ = ["DELIVERY_QUEUE", "QUEUE", "broker_settings", "celery_app", "configure"]

QUEUE = "opsloop"
"""Where events, resumes, sweeps and triggers wait."""
DELIVERY_QUEUE = "opsloop-deliver"
"""Where deliveries wait: a reply goes out from the task that made it, unless it must wait
(a platform's rate limit, an outage) or its delivery was lost; then it is queued here."""

log = logging.getLogger(__name__)

celery_app = Celery("opsloop")


def broker_settings(settings: Settings) -> dict[str, Any]:
    """Celery configuration for ``settings``."""
    state = (settings.home / ".opsloop").resolve()
    state.mkdir(parents=True, exist_ok=True)  # beat keeps its schedule here, with or without Redis
    conf: dict[str, Any] = {
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": QUEUE,
        # Deliveries have a queue of their own, so replies need not wait behind a backlog
        # of new events; every worker reads both.
        "task_routes": {"opsloop.deliver": {"queue": DELIVERY_QUEUE}},
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "timezone": "UTC",
        "beat_schedule": _beat_schedule(settings),
        "beat_schedule_filename": str(state / "beat-schedule"),
    }
    if settings.redis_url:
        conf["broker_url"] = settings.redis_url
        conf["broker_transport"] = None  # the URL's own (a reconfigured app keeps old keys)
        conf["broker_transport_options"] = {"visibility_timeout": settings.visibility_timeout}
    else:
        folder = state / "queue"
        folder.mkdir(parents=True, exist_ok=True)
        conf["broker_url"] = "filesystem://localhost/"
        conf["broker_transport"] = "workers._fs_queue:Transport"  # whole messages only
        conf["broker_transport_options"] = {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "store_processed": False,
            "control_folder": str(state / "control"),
            "polling_interval": 0.05,
        }
        conf["worker_enable_remote_control"] = False
    return conf


def _beat_schedule(settings: Settings) -> dict[str, Any]:
    every = settings.sweep_interval
    schedule: dict[str, Any] = {
        # A sweep not started within its interval is dropped: after a broker outage the
        # sweeps queued meanwhile would otherwise run back to back.
        "sweep": {
            "task": "opsloop.sweep",
            "schedule": timedelta(seconds=every),
            "options": {"expires": every},
        }
    }
    for item in load_policy(settings.policy_file).schedules:
        timer: Any
        if item.cron:
            minute, hour, day, month, weekday = item.cron.split()
            timer = crontab(minute, hour, weekday, day, month)
        else:
            timer = timedelta(seconds=item.every_seconds or 0)
        schedule[f"schedule:{item.name}"] = {
            "task": "opsloop.trigger",
            "schedule": timer,
            "args": [item.name, item.text, item.agent],
        }
    return schedule


def configure(settings: Settings | None = None) -> Settings:
    """Configure :data:`celery_app` from ``settings`` (read from the environment if omitted)."""
    settings = settings or load_settings()
    celery_app.conf.update(broker_settings(settings))
    _state["settings"] = settings
    return settings


# ---------------------------------------------------------------- per-process state
# Each worker process keeps one event loop and one app (database pool, model clients),
# made on first use; nothing about threads is kept between tasks.

_state: dict[str, Any] = {}


def _run(job: Any) -> Any:
    loop = _state.get("loop")
    if loop is None:
        loop = _state["loop"] = asyncio.new_event_loop()
    return loop.run_until_complete(job)


async def _ops() -> Opsloop:
    ops = _state.get("ops")
    if ops is None:
        settings = _state.get("settings") or configure()
        ops = _state["ops"] = await Opsloop.from_settings(settings, auto_migrate=False)
        ops.store.db.use_blocking_driver()  # one task at a time on this process's loop
    assert isinstance(ops, Opsloop)
    return ops


def _senders() -> dict[str, Sender]:
    senders: dict[str, Sender] = {}
    for plugin in load_plugins():
        senders |= plugin.senders
    return senders


def _dispatcher() -> Any:
    from workers.dispatch import CeleryDispatcher

    return CeleryDispatcher(celery_app)


@signals.worker_process_shutdown.connect
def _close(**_: Any) -> None:
    ops = _state.pop("ops", None)
    if ops is not None:
        _run(ops.aclose())


# ---------------------------------------------------------------- tasks


@celery_app.task(name="opsloop.process", bind=True, max_retries=None)
def process(self: Any, item_id: int) -> None:
    """Process one inbox item and deliver its replies (the delivery queue takes what must wait)."""

    async def job() -> None:
        await jobs.process_item(await _ops(), _dispatcher(), item_id, _senders())

    try:
        _run(job())
    except ThreadBusyError as exc:
        # Another worker is stepping this thread; come back when it is likely done.
        raise self.retry(countdown=0.5 + min(self.request.retries, 10) * 0.5, exc=exc) from exc


@celery_app.task(name="opsloop.resume", bind=True, max_retries=None)
def resume(self: Any, thread_id: str) -> None:
    """Drive a running thread whose worker went away."""

    async def job() -> None:
        ops = await _ops()
        await ops.resume(thread_id)
        await jobs.deliver_now(ops, _dispatcher(), _senders(), thread_id)

    try:
        _run(job())
    except ThreadBusyError:
        log.info("thread %s is being stepped already", thread_id)


@celery_app.task(name="opsloop.deliver", bind=True, max_retries=None)
def deliver(self: Any, thread_id: str) -> None:
    """Deliver a thread's pending messages in order: those that had to wait, or were lost."""

    async def job() -> float | None:
        return await jobs.deliver_thread(await _ops(), _senders(), thread_id)

    wait = _run(job())
    if wait is not None:
        raise self.retry(countdown=wait)


@celery_app.task(name="opsloop.sweep")
def sweep() -> dict[str, int]:
    """Expire requests, re-enqueue lost work, retry stuck deliveries."""

    async def job() -> dict[str, int] | None:
        return await jobs.sweep(await _ops(), _dispatcher())

    counts: dict[str, int] | None = _run(job())
    if counts and any(counts.values()):
        log.info("sweep: %s", counts)
    return counts or {}


@celery_app.task(name="opsloop.trigger", bind=True)
def trigger(self: Any, name: str, text: str, agent: str | None) -> None:
    """Start a scheduled trigger's work, once per scheduled time."""
    slot = (self.request.eta or "") or _slot()

    async def job() -> None:
        await jobs.fire_schedule(await _ops(), _dispatcher(), name, text, agent, slot)

    _run(job())


def _slot() -> str:
    from bot.events import utcnow

    return utcnow().strftime("%Y-%m-%dT%H:%M")
