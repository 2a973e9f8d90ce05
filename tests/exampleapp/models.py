"""Boards and the notes pinned on them."""

from __future__ import annotations

from django.db import models

from streaming.capture.querysets import StreamingManager


class Board(models.Model):
    """A named board; anonymous visitors see public boards only."""

    slug = models.SlugField(max_length=50, unique=True)
    title = models.CharField(max_length=200)
    is_public = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.title


class Note(models.Model):
    """A note on a board; moving it to another board changes both boards."""

    board = models.ForeignKey(Board, on_delete=models.CASCADE, related_name="notes")
    text = models.CharField(max_length=500)
    position = models.PositiveIntegerField(default=0)

    # Bulk writes (update, bulk_create, bulk_update) broadcast too.
    objects = StreamingManager()

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return self.text
