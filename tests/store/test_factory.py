"""open_store picks the adapter a URL or path names."""

from __future__ import annotations

import pytest
from mockupdb import MockupDB, going

from server.store.factory import mongo_store_options, open_store
from server.store.mongo import MongoStore
from server.store.sqlite import SqliteStore

HELLO = {"ismaster": True, "minWireVersion": 0, "maxWireVersion": 21}


def test_a_plain_path_opens_sqlite(tmp_path):
    store = open_store(str(tmp_path / "plain.sqlite"))
    try:
        assert isinstance(store, SqliteStore)
        assert (tmp_path / "plain.sqlite").exists()
    finally:
        store.close()


def test_a_sqlite_url_with_four_slashes_is_an_absolute_path(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/abs.sqlite")
    try:
        assert store.path == tmp_path / "abs.sqlite"
        assert store.synchronous == "FULL"
    finally:
        store.close()


def test_a_sqlite_url_with_three_slashes_is_relative_to_the_working_directory(tmp_path,
                                                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///rel.sqlite?synchronous=normal")
    try:
        assert (tmp_path / "rel.sqlite").exists()
        assert store.synchronous == "NORMAL"
    finally:
        store.close()


def test_a_sqlite_url_without_a_path_is_refused():
    with pytest.raises(ValueError):
        open_store("sqlite://")


def test_a_mongodb_url_opens_mongo_on_its_database():
    server = MockupDB(auto_ismaster=HELLO, request_timeout=10)
    server.run()
    try:
        with going(open_store, f"mongodb://127.0.0.1:{server.port}/trades?w=1&journal=false") \
                as opened:
            databases = set()
            for _ in range(4):  # createIndexes: events, transactions, replies, accounts
                request = server.receives()
                databases.add(request.doc["$db"])
                assert request.doc["writeConcern"] == {"w": 1, "j": False}
                request.ok()
        store = opened()
        assert isinstance(store, MongoStore)
        assert databases == {"trades"}
        store.close()
    finally:
        server.stop()


def test_mongodb_url_options_set_the_store_options():
    assert mongo_store_options("mongodb+srv://cluster.example/ledger?w=majority&journal=true"
                               "&timeoutMS=2500") == {
        "database": "ledger", "write_concern": "majority", "journal": True, "timeout_ms": 2500}


def test_a_mongodb_url_without_a_database_keeps_the_default():
    assert mongo_store_options("mongodb://h1:27017,h2:27017/?replicaSet=rs0") == {}

