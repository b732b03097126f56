"""providers subsystem."""
