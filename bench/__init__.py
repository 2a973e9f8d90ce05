"""Benchmarks: `make bench` (bench.run) compares this project, DCRF and the raw limit."""
