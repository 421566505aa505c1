"""Webhooks: a finished job is POSTed to its callback URL, signed with HMAC-SHA256 of the body under
the submitting key's webhook secret (`X-Cascade-Signature: sha256=HEX`), retried with backoff, each
try recorded in `webhook_deliveries`. The sender is a thread of the HTTP service: tier workers never
wait on a receiver."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from cascade.router.redact import redact
from cascade.storage.engine import session_scope
from cascade.storage.repository import get_job
from cascade.storage.webhooks import DueCallback, due_callbacks, record_delivery
from cascade.workers.api.http_errors import ApiError

log = logging.getLogger("cascade.webhooks")
SIGNATURE_HEADER = "X-Cascade-Signature"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def check_callback_url(url: str, *, own: set[tuple[str, int]], allowed_hosts: set[str] | None) -> str:
    """The URL if the service may call it: http(s), a host, not the service itself, and (when the
    operator gave an allowlist) one of the allowed hosts."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(400, f"callback_url {url!r} is not an http(s) URL with a host", param="callback_url")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ApiError(400, f"callback_url {url!r} has an invalid port", param="callback_url") from None
    host = parts.hostname.lower()
    if any(port == own_port and _same_host(host, own_host) for own_host, own_port in own):
        raise ApiError(400, "callback_url points at this service itself; give the URL of your own receiver", param="callback_url")
    if allowed_hosts is not None and host not in allowed_hosts:
        raise ApiError(400, f"callback_url host {host!r} is not allowed here (allowed: {', '.join(sorted(allowed_hosts))})",
                       param="callback_url")
    return url


def _same_host(host: str, own: str) -> bool:
    local = {"localhost", "0.0.0.0", "::", "::1"}
    if host == own or (host in local and own in local):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback and (own in local or own.startswith("127."))


class WebhookSender(threading.Thread):
    """Delivers due callbacks until stopped: claims a few rows (SKIP LOCKED), POSTs each, records the try."""

    def __init__(self, database_url: str, *, interval_s: float = 0.2, timeout_s: float = 5.0):
        super().__init__(name="cascade-webhooks", daemon=True)
        self.database_url, self.interval_s, self.timeout_s = database_url, interval_s, timeout_s
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                sent = self.deliver_due()
            except Exception:  # noqa: BLE001 - the database may be down; try again on the next tick
                log.warning("webhook sender: cannot read due callbacks", exc_info=True)
                sent = 0
            if not sent:
                self.stopped.wait(self.interval_s)

    def stop(self) -> None:
        self.stopped.set()

    def deliver_due(self) -> int:
        with session_scope(self.database_url) as session:
            due = due_callbacks(session)
            for callback in due:
                job = get_job(session, callback.job_id)
                status, error, duration_ms = self.post(callback, json.dumps(job.as_dict()).encode("utf-8"))
                record_delivery(session, callback, status_code=status, error=error, duration_ms=duration_ms)
        return len(due)

    def post(self, callback: DueCallback, body: bytes) -> tuple[int | None, str | None, float]:
        headers = {"Content-Type": "application/json", "User-Agent": "cascade-webhooks",
                   "X-Cascade-Job-Id": str(callback.job_id), "X-Cascade-Delivery-Attempt": str(callback.attempt)}
        if callback.secret:
            headers[SIGNATURE_HEADER] = sign(callback.secret, body)
        request = urllib.request.Request(callback.url, data=body, headers=headers, method="POST")
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.status, None, (time.perf_counter() - started) * 1000
        except urllib.error.HTTPError as exc:
            return exc.code, f"HTTP {exc.code}", (time.perf_counter() - started) * 1000
        except (OSError, ValueError) as exc:
            return None, redact(str(getattr(exc, "reason", exc)))[:500], (time.perf_counter() - started) * 1000
