"""open_journal and open_directory pick the adapter a location names."""

from __future__ import annotations

import pytest
from mockupdb import MockupDB, going

from server.store.factory import mongo_options, open_directory, open_journal, sqlite_location
from server.store.mongo_journal import MongoJournal
from server.store.sqlite_journal import SqliteDirectory, SqliteJournal

HELLO = {"ismaster": True, "minWireVersion": 0, "maxWireVersion": 21}


def test_a_plain_path_is_a_data_directory_of_sqlite_files(tmp_path):
    journal = open_journal(str(tmp_path), 1)
    directory = open_directory(str(tmp_path))
    try:
        assert isinstance(journal, SqliteJournal) and isinstance(directory, SqliteDirectory)
        assert (tmp_path / "shard-1.journal.sqlite").exists()
        assert (tmp_path / "daytrade.sqlite").exists()
    finally:
        journal.close()
        directory.close()


def test_a_sqlite_url_with_four_slashes_is_an_absolute_path(tmp_path):
    assert sqlite_location(f"sqlite:///{tmp_path}/data") == (tmp_path / "data", {})


def test_a_sqlite_url_with_three_slashes_is_relative_and_may_set_synchronous():
    path, options = sqlite_location("sqlite:///rel/data?synchronous=normal")
    assert str(path) == "rel/data" and options == {"synchronous": "NORMAL"}


def test_a_sqlite_url_without_a_path_is_refused():
    with pytest.raises(ValueError):
        open_journal("sqlite://", 0)


def test_a_mongodb_url_opens_mongo_on_its_database_with_its_write_concern():
    server = MockupDB(auto_ismaster=HELLO, request_timeout=10)
    server.run()
    try:
        with going(open_journal, f"mongodb://127.0.0.1:{server.port}/trades?w=1&journal=false",
                   0) as opened:
            request = server.receives()  # the first index the journal makes sure of
            assert request.doc["$db"] == "trades"
            assert request.doc["writeConcern"] == {"w": 1, "j": False}
            request.ok()
            server.autoresponds({})
        journal = opened()
        assert isinstance(journal, MongoJournal)
        journal.close()
    finally:
        server.stop()


def test_mongodb_url_options_set_the_adapter_options():
    assert mongo_options("mongodb+srv://cluster.example/ledger?w=majority&journal=true"
                         "&timeoutMS=2500") == {
        "database": "ledger", "write_concern": "majority", "journal": True, "timeout_ms": 2500}


def test_a_mongodb_url_without_a_database_keeps_the_default():
    assert mongo_options("mongodb://h1:27017,h2:27017/?replicaSet=rs0") == {}
