"""Peer implementations that `spikefa bench` measures spikefa against (optional dependencies)."""
