"""admin subsystem."""
