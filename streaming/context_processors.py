"""Template context telling pages how live updates reach them."""

from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.http import HttpRequest


def streaming(request: HttpRequest) -> dict[str, Any]:
    """Returns `streaming_cross_process`: False when only this process can broadcast."""
    return {"streaming_cross_process": not isinstance(get_channel_layer(), InMemoryChannelLayer)}
