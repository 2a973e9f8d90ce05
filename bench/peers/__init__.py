"""Peer implementations the benchmark compares this project against."""
