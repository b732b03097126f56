"""HTTP surface (admin REST API and web UI) and the ARI event handler."""
