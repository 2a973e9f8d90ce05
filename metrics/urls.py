"""URLs of metrics/: the pages, and the REST router mounted under /api/."""

from django.urls import path
from rest_framework.routers import DefaultRouter

from metrics import api, views

app_name = "metrics"

router = DefaultRouter()
router.register("series", api.SeriesViewSet)
router.register("metrics", api.MetricViewSet)

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("series/<slug:slug>/", views.series_detail, name="series-detail"),
]
