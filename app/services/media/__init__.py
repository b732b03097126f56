"""media subsystem."""
