"""Rate-based (non-spiking) engine: per-example learning rules compiled with Numba."""
