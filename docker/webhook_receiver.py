"""A demo receiver of the completion webhook: verifies the Standard Webhooks signature, logs the event.

Stands in for the RMS backend in docker-compose so the whole path can be watched end to end:
a bad signature gets 401 (the sender records it and retries), a good one 204. It logs run ids,
statuses and counts only; the body carries no PII.
"""

from __future__ import annotations

import json
import logging
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

log = logging.getLogger("webhook-receiver")
MAX_BODY = 1 << 20


class Handler(BaseHTTPRequestHandler):
    webhook: Webhook

    def do_GET(self) -> None:  # healthcheck
        self._answer(200 if self.path == "/health" else 404)

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            return self._answer(413)
        body = self.rfile.read(length)
        try:
            event = self.webhook.verify(body, {k.lower(): v for k, v in self.headers.items()})
        except WebhookVerificationError as exc:
            log.warning("rejected %s: %s", self.headers.get("webhook-id"), exc)
            return self._answer(401)
        data = event.get("data", {}) if isinstance(event, dict) else {}
        log.info("%s %s run=%s schedule=%s status=%s types=%s", self.headers.get("webhook-id"), event.get("type"),
                 data.get("run_id"), data.get("schedule"), data.get("status"), json.dumps(data.get("prediction_types")))
        self._answer(204)

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:  # the handler logs what matters
        pass


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    Handler.webhook = Webhook(os.environ["RECEIVER_SECRET"])
    port = int(os.environ.get("RECEIVER_PORT", "8000"))
    log.info("listening on :%d", port)
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
