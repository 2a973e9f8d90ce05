"""
streaming's reach into daphne, Twisted and autobahn (pinned in pyproject.toml): each
update framed once and written straight to every socket, with flow control (`wire`); each
socket's pings, keepalive and reads policed (`police`); what daphne and autobahn keep of
the upgrade freed (`release`); autobahn's debug lines formatted only if written (`quiet`).
Loaded under other servers too, it imports none of them.

The canaries: tests/streaming/test_fast_path.py, test_wire.py and test_police.py.
"""

from streaming.serve.daphne.police import MAX_QUEUED_FRAMES, police, resume_reading
from streaming.serve.daphne.release import release_handshake, release_upgrade_request
from streaming.serve.daphne.wire import STATE_OPEN, Wire, frame_of, wire_for

__all__ = [
    "MAX_QUEUED_FRAMES",
    "STATE_OPEN",
    "Wire",
    "frame_of",
    "police",
    "release_handshake",
    "release_upgrade_request",
    "resume_reading",
    "wire_for",
]
