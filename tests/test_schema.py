"""
The REST API's OpenAPI schema: generated without warnings, served with Swagger UI, and
honoured by the API under schemathesis's generated requests (no 500s, conforming bodies).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework.request import Request
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from metrics.models import Metric, Series
from metrics.pagination import StrictLimitOffsetPagination

# Checks left out, as the schema cannot say it: valid-looking data may still be refused (a
# series slug that does not exist, a week 53 in a year without one), and DRF coerces some
# invalid-looking data on purpose (5 -> "5", "1.5" -> 1.5: form bodies are all strings).
LENIENT = [positive_data_acceptance, negative_data_rejection]
# Examples per operation: with 12 operations, a few hundred requests in all.
EXAMPLES = {GenerationMode.POSITIVE: 15, GenerationMode.NEGATIVE: 10}


@pytest.fixture
def api_schema(db) -> Iterator[schemathesis.BaseSchema]:
    """Returns the schema as served at /api/schema/, bound to the project's WSGI app."""
    # As Django's test client does: a request must not close the test's connection, which
    # holds the transaction every example's writes are rolled back with.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        app = get_wsgi_application()
        yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", app).exclude(
            path="/api/schema/"
        )
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def rows(db) -> dict[str, list[Any]]:
    """Creates a public and a private series with metrics; returns their slugs and ids."""
    cpu = Series.objects.create(slug="cpu", name="CPU", unit="%", aggregation="avg")
    ram = Series.objects.create(slug="ram", name="RAM", aggregation="last", is_public=False)
    at = datetime(2026, 11, 24, 12, tzinfo=UTC)
    metrics = [Metric.objects.create(series=s, timestamp=at, value=1.5) for s in (cpu, ram)]
    return {"slug": ["cpu", "ram"], "id": [m.pk for m in metrics], "series": ["cpu", "ram"]}


def steer_to_rows(schema: schemathesis.BaseSchema, rows: dict[str, list[Any]]) -> None:
    """Makes generated path parameters and bodies name existing rows half of the time."""

    def variants(values: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        fields = [name for name in rows if name in (values or {})]
        if not fields:
            return st.just(values)
        name = fields[0]
        return st.sampled_from([values, *({**values, name: row} for row in rows[name])])

    def path_parameters(context: schemathesis.HookContext, params: dict[str, Any]) -> Any:
        return variants(params)

    def body(context: schemathesis.HookContext, body: Any) -> Any:
        return variants(body) if isinstance(body, dict) else st.just(body)

    schema.hooks.register_hook_with_name(path_parameters, "flatmap_path_parameters")
    schema.hooks.register_hook_with_name(body, "flatmap_body")


@pytest.fixture
def token(db) -> str:
    """Returns the API token of a user with every metrics permission, so writes run too."""
    user = User.objects.create_user("fuzzer")
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="metrics"))
    return Token.objects.create(user=user).key


def test_schema_generates_and_validates_without_warnings():
    """Tests that `spectacular --validate --fail-on-warn` passes."""
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


@pytest.mark.django_db
def test_schema_and_swagger_ui_are_served(client):
    """Tests that /api/schema/ returns OpenAPI 3 and /api/docs/ the Swagger UI page."""
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert {"/api/series/", "/api/metrics/", "/api/series/{slug}/week/"} <= set(schema["paths"])
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content
    # Served from this site (the sidecar package), so the page works offline.
    assert b"cdn.jsdelivr.net" not in docs.content
    bundle = re.search(rb'src="(/static/[^"]*swagger-ui-bundle\.js)"', docs.content)
    assert bundle, docs.content.decode()
    assert client.get(bundle[1].decode()).status_code == 200


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_schema(api_schema, rows, token, mode):
    """
    Tests that generated requests, valid and invalid, get no 500 and schema-valid answers.

    Every check runs but the two about leniency (see LENIENT).
    """

    class TokenAuth:
        """Signs every request with the writer's token; schemathesis also probes without."""

        def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
            return token

        def set(
            self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext
        ) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Token {data}"}

    api_schema.auth()(TokenAuth)
    if mode == GenerationMode.POSITIVE:
        # Only valid data may be steered: a negative case must stay invalid.
        steer_to_rows(api_schema, rows)
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @settings(
            max_examples=EXAMPLES[mode],
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(mode, auth_storage=api_schema.auth))
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(excluded_checks=LENIENT)

        call()


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["limit=100000000000000000000", "limit=abc", "offset=-1"])
def test_pagination_refuses_what_it_cannot_use(client, rows, query):
    """Tests that a limit or offset out of range is a 400 with a field message, not a 500."""
    response = client.get(f"/api/metrics/?{query}")
    assert response.status_code == 400
    assert list(response.json()) == [query.split("=")[0]]


def test_pagination_caps_the_page_size(rf):
    """Tests that a limit above the maximum is lowered to it, as DRF's max_limit does."""
    paginator = StrictLimitOffsetPagination()
    assert paginator.get_limit(Request(rf.get("/?limit=5000"))) == paginator.max_limit == 1000
    assert paginator.get_limit(Request(rf.get("/?limit=7"))) == 7
    assert paginator.get_limit(Request(rf.get("/"))) == 100


@pytest.mark.django_db
def test_unknown_api_urls_answer_json_404(client):
    """Tests that an /api/ URL no route matches gets DRF's JSON 404, not the HTML page."""
    response = client.get("/api/metrics/not-a-number/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert client.get("/no-such-page/")["Content-Type"].startswith("text/html")
