"""
The consumer as DCRF's documentation shows it: `@model_observer(Metric)` with
groups_for_signal/groups_for_consumer per series, a serializer run once per save, and a
`subscribe` action.
"""

from datetime import timedelta

from channels.db import database_sync_to_async
from django.db.models import Max
from django.db.models.functions import TruncDate
from django.utils import timezone
from djangochannelsrestframework.decorators import action
from djangochannelsrestframework.generics import GenericAsyncAPIConsumer
from djangochannelsrestframework.observer import model_observer
from rest_framework.permissions import AllowAny

from bench.peers.dcrf.observed.models import Metric, Series


def week_payload(series: Series, instant) -> dict:
    """Returns the series' ISO week around `instant`: the max of each day."""
    day = timezone.localdate(instant)
    monday = day - timedelta(days=day.weekday())
    days = [monday + timedelta(days=d) for d in range(7)]
    rows = (
        Metric.objects.filter(series=series, timestamp__date__gte=days[0])
        .filter(timestamp__date__lte=days[-1])
        .annotate(day=TruncDate("timestamp"))
        .values("day")
        .annotate(v=Max("value"))
        .values_list("day", "v")
    )
    by_day = dict(rows)
    iso_year, iso_week, _ = day.isocalendar()
    return {
        "series": series.slug,
        "week": f"{iso_year}-W{iso_week:02d}",
        "labels": [d.isoformat() for d in days],
        "values": [by_day.get(d) for d in days],
        "unit": series.unit,
        "aggregation": series.aggregation,
    }


class MetricConsumer(GenericAsyncAPIConsumer):
    """Subscribes a socket to one series' metric activity."""

    queryset = Series.objects.all()
    permission_classes = (AllowAny,)

    @model_observer(Metric)
    async def metric_activity(
        self,
        message,
        observer=None,
        subscribing_request_ids=[],  # noqa: B006 (DCRF's documented signature)
        **kwargs,
    ):
        """Called for each observed change, once per subscribed consumer."""
        for request_id in subscribing_request_ids:
            await self.send_json({"message": message, "request_id": request_id})

    @metric_activity.groups_for_signal
    def metric_activity(self, instance: Metric, **kwargs):
        yield f"series__{instance.series_id}"

    @metric_activity.groups_for_consumer
    def metric_activity(self, series_pk=None, **kwargs):
        if series_pk is not None:
            yield f"series__{series_pk}"

    @metric_activity.serializer
    def metric_activity(self, instance: Metric, action, **kwargs):
        return week_payload(instance.series, instance.timestamp)

    @action()
    async def subscribe(self, request_id, series, **kwargs):
        """Subscribes to the series with slug `series`."""
        pk = await database_sync_to_async(Series.objects.values_list("pk", flat=True).get)(
            slug=series
        )
        await self.metric_activity.subscribe(request_id=request_id, series_pk=pk)
        return {}, 201
