"""Features: SQL aggregates on the replica (through the reader) and pure DataFrame transforms."""
