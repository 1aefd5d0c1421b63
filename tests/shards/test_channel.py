"""Framing and writes on the gateway <-> shard socket."""

from __future__ import annotations

import socket

import pytest
from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport

from server.shards.channel import FrameProtocol, encode_frame, write_now


@pytest.fixture
def plain():
    """A Twisted connection over one end of a real socketpair, and the other end."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    theirs.settimeout(5)
    proto = Protocol()
    reactor.adoptStreamConnection(ours.fileno(), socket.AF_UNIX,
                                  Factory.forProtocol(lambda: proto))
    ours.close()
    yield proto.transport, theirs
    proto.transport.stopReading()
    proto.transport.stopWriting()
    proto.transport.socket.close()
    theirs.close()


def test_write_now_sends_at_once_when_nothing_is_queued(plain):
    transport, peer = plain
    write_now(transport, b"hello")
    assert peer.recv(100) == b"hello"  # no reactor turn in between
    assert not transport._tempDataBuffer


def test_write_now_queues_behind_data_already_queued(plain):
    transport, peer = plain
    transport.write(b"first,")
    write_now(transport, b"second")
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(100)
    transport.doWrite()
    peer.setblocking(True)
    assert peer.recv(100) == b"first,second"


def test_write_now_leaves_other_transports_to_their_write():
    transport = StringTransport()
    write_now(transport, b"line\n")
    assert transport.value() == b"line\n"


def test_a_frame_reaches_the_other_side_as_the_batch_it_was():
    got = []
    proto = FrameProtocol(got.append)
    frame = encode_frame([("R", [1, 2], b'{"a":1}\n{"b":2}')])
    proto.dataReceived(frame[:3])
    proto.dataReceived(frame[3:] + frame)
    assert got == [[("R", [1, 2], b'{"a":1}\n{"b":2}')]] * 2
