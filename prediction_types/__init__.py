"""One module per prediction domain: its units (schedule, tables, shared inputs, scored or not) and their glue (read, model calls, rows, registry records); ``worker.catalog`` gathers them."""
