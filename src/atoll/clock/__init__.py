"""Hybrid logical clock (pure: the time source is an argument)."""

from atoll.clock.hlc import HybridClock, hlc_logical, hlc_physical_ms, make_hlc

__all__ = ["HybridClock", "hlc_logical", "hlc_physical_ms", "make_hlc"]
