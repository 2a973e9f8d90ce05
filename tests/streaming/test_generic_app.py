"""
The example app in tests/exampleapp (boards of notes) streams through streaming/ with no
help from metrics/: subscribe, save, move, bulk update, permission and gone, end to end.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, Permission, User

from streaming import protocol
from streaming.serve.consumer import StreamConsumer
from streaming.serve.hub import get_hub
from tests.exampleapp.models import Board, Note
from tests.exampleapp.streams import BOARD_STREAM
from tests.support.processes import run_script
from tests.support.wsclient import StreamSubscriber

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

Frame = dict[str, Any]


async def connect(user: Any = None) -> WebsocketCommunicator:
    """Returns a connected socket of StreamConsumer for `user` (anonymous by default)."""
    communicator = WebsocketCommunicator(StreamConsumer.as_asgi(), "/ws/stream/")
    communicator.scope["user"] = user or AnonymousUser()
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def subscribe(socket: WebsocketCommunicator, board: str, request_id: int = 1) -> Frame:
    """Subscribes to a board and returns the reply."""
    await socket.send_json_to(
        {
            "action": "subscribe",
            "request_id": request_id,
            "stream": BOARD_STREAM,
            "params": {"board": board},
        }
    )
    return await next_frame(socket, lambda f: f.get("request_id") == request_id)


async def next_frame(socket: WebsocketCommunicator, predicate: Callable[[Frame], bool]) -> Frame:
    """Returns the first frame received that matches `predicate`, skipping older ones."""
    while True:
        frame = await socket.receive_json_from(timeout=10)
        if predicate(frame):
            return frame


def texts(frame: Frame) -> list[str]:
    """Returns the note texts of an update frame's (or a subscribe reply's) payload."""
    return [note["text"] for note in frame["payload"]["notes"]]


def is_update(frame: Frame) -> bool:
    """Returns whether a frame is a pushed update."""
    return frame.get("action") == "update"


async def test_saving_a_note_updates_its_board(use_redis):
    """Tests that creating and editing a Note pushes the board's new payload."""
    board = await Board.objects.acreate(slug="ideas", title="Ideas")
    socket = await connect()
    reply = await subscribe(socket, "ideas")
    assert reply["response_status"] == 200, reply
    assert reply["data"]["key"] == str(board.pk)
    assert reply["data"]["payload"] == {"board": "ideas", "title": "Ideas", "notes": []}

    # Updates carry state, not events: the board's own creation may still be on its way,
    # so each step waits for the state it expects.
    note = await sync_to_async(Note.objects.create)(board=board, text="ship it")
    frame = await next_frame(socket, lambda f: is_update(f) and texts(f) == ["ship it"])
    assert frame["stream"] == BOARD_STREAM
    assert frame["version"] > reply["data"]["version"]
    assert frame["payload"]["notes"] == [{"id": note.pk, "text": "ship it"}]

    note.text = "shipped"
    await sync_to_async(note.save)()
    later = await next_frame(socket, lambda f: is_update(f) and texts(f) == ["shipped"])
    assert later["version"] > frame["version"]
    await socket.disconnect()


async def test_moving_a_note_updates_the_old_and_new_board(use_redis):
    """Tests that a note moved between boards leaves one payload and joins the other."""
    todo = await Board.objects.acreate(slug="todo", title="To do")
    done = await Board.objects.acreate(slug="done", title="Done")
    note = await Note.objects.acreate(board=todo, text="write docs")
    socket = await connect()
    assert texts((await subscribe(socket, "todo", 1))["data"]) == ["write docs"]
    assert texts((await subscribe(socket, "done", 2))["data"]) == []

    note.board = done
    await sync_to_async(note.save)()
    latest: dict[str, list[str]] = {}
    while latest != {"todo": [], "done": ["write docs"]}:
        frame = await next_frame(socket, is_update)
        latest[frame["payload"]["board"]] = texts(frame)
    await socket.disconnect()


async def test_bulk_update_of_notes_reaches_subscribers(use_redis):
    """Tests that QuerySet.update() through StreamingManager broadcasts the board."""
    board = await Board.objects.acreate(slug="bulk", title="Bulk")
    await sync_to_async(Note.objects.bulk_create)(
        [Note(board=board, text="a", position=1), Note(board=board, text="b", position=2)]
    )
    socket = await connect()
    assert texts((await subscribe(socket, "bulk"))["data"]) == ["a", "b"]

    await sync_to_async(Note.objects.filter(board=board).update)(text="done")
    await next_frame(socket, lambda f: is_update(f) and texts(f) == ["done", "done"])
    await socket.disconnect()


async def test_private_board_needs_the_view_permission(use_redis):
    """
    Tests that a private board refuses anonymous sockets (404, as if it did not exist) but
    not permitted users.
    """
    await Board.objects.acreate(slug="secret", title="Secret", is_public=False)
    anonymous = await connect()
    reply = await subscribe(anonymous, "secret")
    assert reply["response_status"] == 404
    assert reply["data"] is None
    await anonymous.disconnect()

    user = await sync_to_async(User.objects.create_user)("reader")
    permission = await Permission.objects.aget(codename="view_board")
    await sync_to_async(user.user_permissions.add)(permission)
    user = await User.objects.aget(pk=user.pk)
    reader = await connect(user)
    reply = await subscribe(reader, "secret")
    assert reply["response_status"] == 200, reply
    assert reply["data"]["payload"]["title"] == "Secret"
    await reader.disconnect()


async def test_unknown_board_and_bad_params_are_refused(use_redis):
    """Tests that an unknown board is a 404 and malformed params a 400."""
    socket = await connect()
    assert (await subscribe(socket, "nowhere"))["response_status"] == 404
    await socket.send_json_to(
        {"action": "subscribe", "request_id": 9, "stream": BOARD_STREAM, "params": {"b": 1}}
    )
    reply = await next_frame(socket, lambda f: f.get("request_id") == 9)
    assert reply["response_status"] == 400
    assert reply["errors"] == [{"params": ['Expected {"board": "<slug>"}.']}]
    await socket.disconnect()


async def test_deleting_a_board_sends_gone(use_redis):
    """Tests that deleting a board (and its notes, by cascade) ends with a `gone` frame."""
    board = await Board.objects.acreate(slug="old", title="Old")
    await Note.objects.acreate(board=board, text="stale")
    socket = await connect()
    reply = await subscribe(socket, "old")
    await sync_to_async(board.delete)()
    frame = await next_frame(socket, lambda f: f.get("action") == "gone")
    assert frame == {
        "action": "gone",
        "stream": BOARD_STREAM,
        "key": reply["data"]["key"],
        "version": frame["version"],
    }
    assert frame["version"] > reply["data"]["version"]
    await socket.disconnect()


async def test_orm_script_in_another_process_reaches_daphne_subscriber(daphne, use_redis):
    """Tests that a Note saved by a separate script reaches a board subscriber on daphne."""
    await Board.objects.acreate(slug="remote", title="Remote")
    client = await StreamSubscriber(daphne.ws_url).connect()
    reply = await client.subscribe(BOARD_STREAM, board="remote")
    assert reply["response_status"] == 200, reply
    key = reply["data"]["key"]

    run_script(
        """
        from tests.exampleapp.models import Board, Note
        Note.objects.create(board=Board.objects.get(slug="remote"), text="from a script")
        """,
        use_redis,
    )
    await client.wait_for(lambda c: c.payload(key)["notes"] != [])
    assert [n["text"] for n in client.payload(key)["notes"]] == ["from a script"]
    await client.close()


async def test_a_gone_frame_with_the_snapshots_version_does_not_end_the_subscription():
    """
    Tests that a socket whose snapshot carries version V keeps its subscription when a gone
    frame of version V arrives (that payload was read after the snapshot), and gets the
    gone frame that follows at V + 1.
    """
    hub = get_hub()
    received: list[dict[str, Any]] = []

    async def send(event: dict[str, Any]) -> None:
        received.append(json.loads(event["text"]))

    owner = object()
    member = await hub.join(owner, send, BOARD_STREAM, "1")
    await hub.ready(member, 5)
    group = protocol.group_name(BOARD_STREAM, "1")

    await hub.fanout(protocol.update_message(BOARD_STREAM, "1", 5, None))
    assert received == []
    assert owner in hub.groups[group]

    await hub.fanout(protocol.update_message(BOARD_STREAM, "1", 6, None))
    assert received == [{"action": "gone", "stream": BOARD_STREAM, "key": "1", "version": 6}]
    assert group not in hub.groups
