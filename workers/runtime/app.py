"""Build the Celery app for a cascade: one queue per tier, late acks, prefetch 1. Nothing runs at import."""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from cascade.workers.runtime.settings import Settings
from cascade.workers.runtime.tier_task import register


def create_app(settings: Settings) -> Celery:
    """A Celery app whose queues and routes come from the tiers in `settings.config`."""
    config = settings.config
    app = Celery("cascade", broker=settings.require_broker(), set_as_current=False)
    app.conf.update(
        task_acks_late=True,  # a message is acked only after its attempts are committed
        task_reject_on_worker_lost=True,  # a killed worker's message goes back to the queue
        worker_prefetch_multiplier=1,
        task_ignore_result=True,  # results live in the database
        task_serializer="json",
        accept_content=["json"],
        task_queues=[Queue(name) for name in config.queues],
        task_default_queue=config.first.queue,
        task_create_missing_queues=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            # A message unacked for this long (its worker died) goes back to the queue.
            "visibility_timeout": settings.visibility_timeout_s,
            "unacked_restore_interval": max(1, min(10, settings.visibility_timeout_s // 3)),
            "unacked_restore_throttle": 1,
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        worker_enable_remote_control=settings.remote_control,
        enable_utc=True,
    )
    if settings.require_broker().startswith("memory"):
        # The in-process broker is polled; the default 1 s poll would dominate a demo's run time.
        app.conf.broker_transport_options["polling_interval"] = 0.005
    app.cascade_settings = settings  # type: ignore[attr-defined]
    register(app, settings)
    return app
