"""
The `exampleapp.board` stream: a key is one board (by primary key), its payload the
board's notes in order. Subscribe with params {"board": "<slug>"}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streaming
from tests.exampleapp.models import Board, Note

BOARD_STREAM = "exampleapp.board"
VIEW_PERMISSION = "exampleapp.view_board"


def note_keys(note: Any) -> set[str]:
    """Returns the key of a note's board; reads only board_id (old values stand in too)."""
    return {str(note.board_id)}


def board_keys(board: Any) -> set[str]:
    """Returns the board's own key: its title or existence changed."""
    return {str(board.id)}


def params_key(params: Mapping[str, Any]) -> str:
    """Returns the key for subscribe params {"board": slug}."""
    if set(params) != {"board"} or not isinstance(params["board"], str):
        raise streaming.InvalidParams('Expected {"board": "<slug>"}.')
    board_id = Board.objects.filter(slug=params["board"]).values_list("pk", flat=True).first()
    if board_id is None:
        raise streaming.StreamNotFound(f"No board {params['board']!r}.")
    return str(board_id)


def payload(key: str, using: str | None) -> dict[str, Any] | None:
    """Returns the board and its notes, or None once the board is deleted."""
    board = Board.objects.db_manager(using).filter(pk=int(key)).first()
    if board is None:
        return None
    notes = Note.objects.db_manager(using).filter(board=board).values("id", "text")
    return {"board": board.slug, "title": board.title, "notes": list(notes)}


def permission(user: Any, key: str) -> bool:
    """Returns whether `user` may subscribe: public boards, or with exampleapp.view_board."""
    board = Board.objects.filter(pk=int(key)).first()
    if board is None:
        return False
    return board.is_public or bool(user is not None and user.has_perm(VIEW_PERMISSION))


board_stream = streaming.Stream(
    name=BOARD_STREAM,
    sources=(
        streaming.Source(Note, keys=note_keys, fields=("board_id",)),
        streaming.Source(Board, keys=board_keys, fields=("id",)),
    ),
    params=params_key,
    payload=payload,
    permission=permission,
)


def register() -> None:
    """Registers the example streams; called from ExampleAppConfig.ready()."""
    streaming.register(board_stream)
