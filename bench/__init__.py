"""Benchmarks: gas per operation, write throughput, crypto speed, memory, read latency (`python -m bench`)."""
