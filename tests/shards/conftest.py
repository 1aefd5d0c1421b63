"""Fixtures of the engine tests."""

import pytest

from tests.shards.harness import Desk


@pytest.fixture
def desk() -> Desk:
    """A fresh engine where ABC trades at $10.00."""
    return Desk({"ABC": 1_000, "XY": 2_500})
