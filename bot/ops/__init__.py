"""Operations: what an operator's tools reach (health probe, Prometheus metrics). Only the
launcher imports it; it knows the engine, never a chat library."""

from bot.ops.health import HealthServer

__all__ = ["HealthServer"]
