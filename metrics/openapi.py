"""
The OpenAPI schema class of the REST API: drf-spectacular's, plus what it cannot infer
from DRF itself: anonymous reads, and the error responses every operation may return.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular import openapi
from rest_framework import permissions

# DRF's error bodies: {"detail": "..."} for 403 and 404, field -> messages for a 400.
DETAIL = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
FIELD_ERRORS = {
    "type": "object",
    "description": "Messages per field (`non_field_errors` for the whole body), or `detail`.",
    "additionalProperties": {},
}


def _error(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


class AutoSchema(openapi.AutoSchema):
    """Documents anonymous safe methods and the 400, 403 and 404 answers DRF gives."""

    def get_auth(self) -> list[dict[str, Any]]:
        """Returns the security requirements; reads allowed anonymously list `{}` too."""
        auths = super().get_auth()
        anonymous_reads = any(
            isinstance(p, permissions.DjangoModelPermissionsOrAnonReadOnly)
            for p in self.view.get_permissions()
        )
        if anonymous_reads and self.method in permissions.SAFE_METHODS and {} not in auths:
            auths.append({})
        return auths

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        """Returns the operation with its error responses added."""
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        responses = operation["responses"]
        parameters = operation.get("parameters", [])
        if "requestBody" in operation or any(p["in"] == "query" for p in parameters):
            responses.setdefault("400", _error("Invalid input.", FIELD_ERRORS))
        # A bad token or a missing permission; DRF answers 403 as session auth comes first.
        responses.setdefault("403", _error("Not allowed.", DETAIL))
        if any(p["in"] == "path" for p in parameters):
            responses.setdefault("404", _error("Not found, or not visible to you.", DETAIL))
        return operation
