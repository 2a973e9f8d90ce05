"""Operations: counters, the health check and the Prometheus export."""
