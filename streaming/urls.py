"""HTTP URLs of streaming/: /healthz and the Prometheus counters at /metrics/."""

from django.urls import path

from streaming.health import healthz
from streaming.metrics_export import MetricsView

app_name = "streaming"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics/", MetricsView.as_view(), name="metrics"),
]
