"""HTTP URLs of streaming/: /healthz and the Prometheus counters at /metrics/."""

from django.urls import path

from streaming.ops.health import healthz
from streaming.ops.prometheus import MetricsView

app_name = "streaming"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics/", MetricsView.as_view(), name="metrics"),
]
