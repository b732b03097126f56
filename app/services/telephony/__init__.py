"""telephony subsystem."""
