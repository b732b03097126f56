"""Cross-cutting infrastructure: settings, database, logging."""
