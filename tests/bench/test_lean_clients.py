"""The lean subscribers of the N = 5,000 point (bench/lean_clients.py) and its targets."""

from __future__ import annotations

import json
import struct

from bench import report
from bench.clients import Client
from bench.lean_clients import LeanSocket, LeanSwarm, masked


class Transport:
    """Records what a socket writes."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.written.append(b"<closed>")


def server_frame(opcode: int, data: bytes) -> bytes:
    """Returns an unmasked server frame."""
    if len(data) < 126:
        return struct.pack("!BB", 0x80 | opcode, len(data)) + data
    return struct.pack("!BBH", 0x80 | opcode, 126, len(data)) + data


def unmask(frame: bytes) -> tuple[int, bytes]:
    """Returns the opcode and payload of a masked client frame."""
    size, at = frame[1] & 0x7F, 2
    if size == 126:
        size, at = struct.unpack_from("!H", frame, 2)[0], 4
    mask, data = frame[at : at + 4], frame[at + 4 :]
    assert len(data) == size
    return frame[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def push(value: float) -> bytes:
    """Returns a push shaped like this project's, reflecting `value`."""
    return json.dumps({"action": "update", "payload": {"values": [None, value]}}).encode()


def test_client_frames_are_masked_and_unmask_to_their_payload():
    """Tests that masked() frames small and 126+ byte payloads so that they unmask back."""
    for data in (b"", b"ping", b"x" * 300):
        assert unmask(masked(0x1, data)) == (0x1, data)


async def test_a_socket_subscribes_then_records_each_higher_value_from_split_frames():
    """
    Tests that a lean socket sends its subscribe after the upgrade, is ready on a 200
    reply, then records every push (even split mid-frame), a trace step per higher value,
    and answers a ping with its pong.
    """
    swarm = LeanSwarm("project", "ws://127.0.0.1:1/ws/stream/", "s")
    client, transport = Client(), Transport()
    socket = LeanSocket(swarm, client, b"GET", '{"action": "subscribe"}')
    socket.connection_made(transport)
    socket.data_received(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
    assert unmask(transport.written[-1]) == (0x1, b'{"action": "subscribe"}')
    assert not socket.ready.done()

    reply = json.dumps({"response_status": 200, "data": {}}).encode()
    stream = server_frame(0x1, reply) + server_frame(0x1, push(3)) + server_frame(0x1, push(2))
    stream += server_frame(0x9, b"hi") + server_frame(0x1, push(7) + b" " * 200)
    for at in range(0, len(stream), 7):
        socket.data_received(stream[at : at + 7])

    assert socket.ready.done()
    assert socket.ready.exception() is None
    assert [value for _, value in client.trace] == [3, 7]
    assert len(swarm.received) == 3
    assert unmask(transport.written[-1]) == (0xA, b"hi")


async def test_a_refused_subscribe_fails_the_socket():
    """Tests that a reply with a 4xx status makes the socket's ready fail."""
    swarm = LeanSwarm("project", "ws://127.0.0.1:1/ws/stream/", "s")
    socket = LeanSocket(swarm, Client(), b"GET", "{}")
    socket.connection_made(Transport())
    reply = json.dumps({"response_status": 404}).encode()
    socket.data_received(b"HTTP/1.1 101 OK\r\n\r\n" + server_frame(0x1, reply))
    assert isinstance(socket.ready.exception(), RuntimeError)


def test_targets_judge_the_5000_point_by_lost_p99_ratio_and_memory():
    """Tests that the targets block marks N = 5,000's lost/p99 and memory rows."""

    def result(target: str, p99: float, kb: float) -> dict:
        paced = {"lost_share": 0.0, "p99": p99, "p50": p99, "post_commit_p50": 1e-4}
        return {"target": target, "n": 5000, "rate": 10.0, "paced": paced, "kb_per_connection": kb}

    shown = report.targets([result("raw", 0.2, 13.0), result("project", 0.1, 21.0)])
    assert "[    met] N=5000 at 10/s: 0 lost, p99 <= 1x raw: lost 0.00%, 0.50x" in shown
    assert "[NOT MET] memory <= 20 KB per connection (N=5000): 21.0 KB" in shown
