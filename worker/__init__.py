"""The process side of the pipeline: settings, database access, the run loop, the CLI."""
