"""The completion webhook, as one package (Saleor's ``webhook/`` layout): what is sent, how it is
signed and sent, and the delivery records that make it at least once.

- ``payload``: the event body and its ids (``build_body``, ``delivery_id_for``, ``scrub_reason``).
- ``signing``: Standard Webhooks headers (``sign_headers``).
- ``transport``: one signed POST and its verdict (``send_signed``, ``SendResult``), backoff.
- ``records``: the delivery and attempt rows and their SQL (``DeliveryRecords``, reads).
- ``deliveries``: the delivery loop (``emit_run_completed``, ``attempt_delivery``, ``redeliver``).
- ``receiver``: the reference receiver for the RMS team (``python -m webhooks.receiver``).

Layer 2: it imports ``core`` and third-party libraries only. Callers (the worker, the tasks, the
CLI) hand in the engine, the ``WebhookSettings`` and, to queue work, an ``enqueue`` callable.
Import the submodules; this file re-exports nothing, so the receiver loads no database driver.
"""
