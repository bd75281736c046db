"""Unit declarations, one module per domain; ``worker.catalog`` gathers them."""
