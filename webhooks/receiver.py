"""A reference receiver of the completion webhook, for the RMS team (see docs/webhooks.md).

Plain Python (``http.server``) on purpose: the three things every receiver must do are visible
without a framework. 1. Verify the signature over the raw body bytes with a Standard Webhooks
library before parsing anything. 2. Drop duplicates by ``webhook-id`` (delivery is at least once:
a retry after a lost answer, or an admin's redelivery, repeats the same id). 3. Answer 2xx fast
and do the work afterwards; a slow answer is a timeout, and a timeout is retried.

It also serves as the demo receiver (docker-compose) and as the receiver in the tests::

    RMS_WEBHOOK_SECRET=whsec_... python -m webhooks.receiver --port 8099

It imports nothing of the pipeline: only the ``standardwebhooks`` library and the standard one.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20


class SeenIds:
    """The ids already processed, bounded. In production keep them in the database instead, with a
    unique constraint on the id, so the check survives restarts and works across processes."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def add(self, msg_id: str) -> bool:
        """True if the id is new (and now remembered), False if it was seen before."""
        with self._lock:
            if msg_id in self._ids:
                return False
            self._ids[msg_id] = None
            while len(self._ids) > self._capacity:
                self._ids.popitem(last=False)
            return True

    def discard(self, msg_id: str) -> None:
        with self._lock:
            self._ids.pop(msg_id, None)


class CompletionReceiver:
    """Verification and de-duplication, independent of the web framework around them.

    ``secrets``: the secret(s) this receiver accepts; during a rotation it may hold the old and
    the new one. ``on_event`` gets the parsed event once per ``webhook-id``.
    """

    def __init__(
        self,
        secrets: str | list[str],
        on_event: Callable[[dict[str, Any]], None] | None = None,
        seen: SeenIds | None = None,
    ) -> None:
        secrets = [secrets] if isinstance(secrets, str) else list(secrets)
        self._webhooks = [Webhook(s) for s in secrets]
        self.on_event = on_event or (lambda event: None)
        self.seen = seen or SeenIds()

    def verify(self, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        """The parsed event if one of our secrets signed exactly these bytes recently; raises
        ``WebhookVerificationError`` otherwise (bad signature, missing headers, stale timestamp)."""
        headers = {k.lower(): v for k, v in headers.items()}
        error: WebhookVerificationError | None = None
        for webhook in self._webhooks:
            try:
                return webhook.verify(body, headers)
            except WebhookVerificationError as exc:
                error = exc
        raise error or WebhookVerificationError("no secret configured")

    def handle(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON answer) for one request."""
        try:
            event = self.verify(body, headers)
        except WebhookVerificationError as exc:
            log.warning("rejected webhook: %s", exc)
            return 401, {"error": "invalid signature"}
        msg_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
        if not self.seen.add(msg_id):
            return 200, {"duplicate": True}
        try:
            self.on_event(event)
        except Exception:
            self.seen.discard(msg_id)  # not processed: let the sender's retry through
            log.exception("webhook %s: handler failed", msg_id)
            return 500, {"error": "handler failed"}
        return 200, {"ok": True}


class ReceiverHandler(BaseHTTPRequestHandler):
    """POST endpoint around a ``CompletionReceiver`` (set as ``server.receiver``)."""

    protocol_version = "HTTP/1.1"

    def read_body(self) -> bytes | None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES:
            return None
        return self.rfile.read(length)

    def answer(self, status: int, payload: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        """Liveness for container healthchecks; nothing else is served on GET."""
        if self.path == "/health":
            self.answer(200, {"ok": True})
        else:
            self.answer(404, {"error": "POST the webhook; GET /health for liveness"})

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.read_body()
        if body is None:
            self.answer(413, {"error": "body too large"})
            return
        status, payload = self.server.receiver.handle(body, dict(self.headers.items()))
        self.answer(status, payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def make_server(
    receiver: CompletionReceiver,
    host: str = "127.0.0.1",
    port: int = 0,
    handler: type[ReceiverHandler] = ReceiverHandler,
) -> ThreadingHTTPServer:
    """A threaded server around ``receiver``; port 0 picks a free port (``server.server_port``)."""
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    server.receiver = receiver
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Reference receiver of the rms-ml completion webhook.")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args(argv)
    secrets = os.environ.get("RMS_WEBHOOK_SECRET", "").split()
    if not secrets:
        parser.error("set RMS_WEBHOOK_SECRET (whsec_..., several separated by spaces during a rotation)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    def on_event(event: dict[str, Any]) -> None:
        data = event["data"]
        log.info(
            "run %s (%s) %s: %s", data["run_id"], data["schedule"], data["status"], data["prediction_types"]
        )

    server = make_server(CompletionReceiver(secrets, on_event), args.host, args.port)
    log.info("listening on %s:%d", args.host, server.server_port)
    server.serve_forever()


if __name__ == "__main__":
    main()
