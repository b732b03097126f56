"""Prometheus metrics (prometheus-client), one registry per application instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30)


class Metrics:
    """Every metric the gateway exports at `/metrics`.

    A registry per instance (not the global default) lets tests build many apps in
    one process. Latencies are observed in seconds, as Prometheus convention wants.
    """

    def __init__(self) -> None:
        """Create the registry and register every metric on it."""
        self.registry = CollectorRegistry()
        r = self.registry
        self.turns = Counter(
            "aigw_turns",
            "Agent turns finished, by AI_STATUS and model.",
            ["status", "model"],
            registry=r,
        )
        self.turn_latency = Histogram(
            "aigw_turn_latency_seconds",
            "Whole turn, StasisStart to result.",
            ["model"],
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.llm_latency = Histogram(
            "aigw_llm_latency_seconds",
            "Time inside chat model calls per turn.",
            ["model"],
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.tool_latency = Histogram(
            "aigw_tool_call_latency_seconds",
            "HTTP tool call latency.",
            ["tool", "outcome"],
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.active_calls = Gauge("aigw_active_calls", "Channels whose turn is in progress.", registry=r)
        self.ari_connected = Gauge(
            "aigw_ari_connected", "1 while the ARI event WebSocket is connected.", registry=r
        )
        self.ari_reconnects = Counter(
            "aigw_ari_reconnects", "ARI event WebSocket reconnect attempts.", registry=r
        )
        self.ari_reader_restarts = Counter(
            "aigw_ari_reader_restarts",
            "ARI event reader task restarts after it ended on an unexpected exception.",
            registry=r,
        )
        self.channels_recovered = Counter(
            "aigw_channels_recovered",
            "Channels found parked in the Stasis application after a (re)connect and continued.",
            registry=r,
        )
        self.call_log_dropped = Counter(
            "aigw_call_log_dropped", "Call-log records that could not be written.", registry=r
        )
