"""Fixtures for the store tests: a mongomock client that accepts what pymongo 4.20 sends."""

from __future__ import annotations

import pytest


@pytest.fixture
def mongomock_client(monkeypatch):
    """A fresh mongomock client.

    pymongo >= 4.11 passes `sort=` when it adds an update or a replace to a bulk write, which
    mongomock 4.3's builder does not accept; the emulator gets a shim that takes the argument
    (and refuses a real sort, which our adapter never asks for). The adapter is left untouched.
    """
    mongomock = pytest.importorskip("mongomock")
    from mongomock.collection import BulkOperationBuilder

    add_update, add_replace = BulkOperationBuilder.add_update, BulkOperationBuilder.add_replace

    def without_sort(method):
        def call(self, *args, sort=None, **kwargs):
            if sort is not None:
                raise NotImplementedError("mongomock shim: sorted bulk updates")
            return method(self, *args, **kwargs)
        return call

    monkeypatch.setattr(BulkOperationBuilder, "add_update", without_sort(add_update))
    monkeypatch.setattr(BulkOperationBuilder, "add_replace", without_sort(add_replace))
    client = mongomock.MongoClient()
    yield client
    client.close()
