"""Template context telling pages how live updates reach them."""

from typing import Any

from django.http import HttpRequest


def streaming(request: HttpRequest) -> dict[str, Any]:
    """
    Returns `streaming_cross_process`, True: every server reads the database's change log,
    so writes from any process reach its pages, with or without a shared channel layer.
    """
    return {"streaming_cross_process": True}
