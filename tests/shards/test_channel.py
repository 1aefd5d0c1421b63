"""Framing and writes on the gateway <-> shard socket."""

from __future__ import annotations

import pickle
import struct

import pytest
from twisted.internet.testing import StringTransport

from server.shards.channel import (
    Frame,
    FrameError,
    FrameProtocol,
    decode_body,
    encode_frame,
    pack_records,
    unpack_records,
)


def test_a_frame_reaches_the_other_side_as_the_batch_it_was():
    got = []
    proto = FrameProtocol(got.append)
    proto.makeConnection(StringTransport())
    frame = encode_frame([(Frame.REPLIES, [1, 2], '{"a":1}\n{"b":2}')])
    proto.dataReceived(frame[:3])
    proto.dataReceived(frame[3:] + frame)
    assert got == [[["R", [1, 2], '{"a":1}\n{"b":2}']]] * 2


def test_frames_are_json_so_a_pickle_is_refused_and_never_loaded():
    got = []
    transport = StringTransport()
    proto = FrameProtocol(got.append)
    proto.makeConnection(transport)
    body = pickle.dumps([("C", 1, 0, "ADD,alice,1.00")])
    proto.dataReceived(struct.pack("!I", len(body)) + body)
    assert got == []
    assert transport.disconnecting


def test_a_frame_over_the_limit_closes_the_link_before_it_is_read():
    transport = StringTransport()
    proto = FrameProtocol(lambda batch: None, max_frame=100)
    proto.makeConnection(transport)
    proto.dataReceived(struct.pack("!I", 101))
    assert transport.disconnecting


def test_a_frame_that_is_json_but_not_a_list_of_messages_is_refused():
    with pytest.raises(FrameError):
        decode_body(b'{"C": 1}')
    with pytest.raises(FrameError):
        decode_body(b'[[1, 2]]')


def test_journal_records_cross_a_json_frame_byte_for_byte():
    rows = [(1, bytes(range(256))), (2, b"")]
    frame = encode_frame([(Frame.RECORDS, 7, 99, pack_records(rows))])
    [[_, _, _, packed]] = decode_body(frame[4:])
    assert unpack_records(packed) == rows
