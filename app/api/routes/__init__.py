"""One router per resource of the admin surface."""
