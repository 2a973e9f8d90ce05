"""Limit/offset pagination that refuses what it cannot read, instead of ignoring it."""

from __future__ import annotations

import re
from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

_DIGITS = re.compile(r"[0-9]{1,19}")
# Past this, a row index means nothing to any database (a signed 64-bit integer).
MAXIMUM = 2**63 - 1


class StrictLimitOffsetPagination(LimitOffsetPagination):
    """
    DRF's LimitOffsetPagination, but `limit` and `offset` must be whole numbers (400 with a
    field message otherwise); a limit above `max_limit` is lowered to it.
    """

    max_limit = 1000

    def get_limit(self, request: Request) -> int | None:
        """Returns the page size asked for (at least 1, at most max_limit), or the default."""
        limit = self._number(request, self.limit_query_param, minimum=1)
        if limit is None:
            return self.default_limit
        return min(limit, self.max_limit) if self.max_limit else limit

    def get_offset(self, request: Request) -> int:
        """Returns the index of the first row asked for, 0 by default."""
        offset = self._number(request, self.offset_query_param, minimum=0)
        return offset or 0

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        """Returns the limit and offset parameters with their minimums."""
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            minimum = 1 if parameter["name"] == self.limit_query_param else 0
            parameter["schema"] = {"type": "integer", "minimum": minimum, "maximum": MAXIMUM}
        return parameters

    def _number(self, request: Request, name: str, *, minimum: int) -> int | None:
        text = request.query_params.get(name)
        if text is None:
            return None
        # int() would also take " 5", "+5", "5_0" and other scripts' digits.
        if not _DIGITS.fullmatch(text) or not minimum <= int(text) <= MAXIMUM:
            raise ValidationError({name: [f"Must be a whole number from {minimum} to {MAXIMUM}."]})
        return int(text)
