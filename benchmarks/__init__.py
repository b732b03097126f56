"""Performance benchmark harness of the gateway (see benchmarks/README.md)."""
