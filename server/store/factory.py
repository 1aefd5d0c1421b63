"""Open the store a URL or path names: MongoDB for `mongodb://` URLs, SQLite for everything else."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from server.store.faults import with_faults_from_env
from server.store.port import Store
from server.store.sqlite import SqliteStore

MONGO_SCHEMES = ("mongodb://", "mongodb+srv://")
SQLITE_SCHEME = "sqlite://"


def open_store(url_or_path: str) -> Store:
    """A store for `mongodb://...`, `mongodb+srv://...`, `sqlite:///path` or a plain file path.

    MongoDB: the database is the URL's path (default `daytrade`), and the URL options `w` and
    `journal` set the write concern (default majority with journal). SQLite: `sqlite:///rel.db`
    and `sqlite:////abs.db` as in SQLAlchemy, with an optional `?synchronous=NORMAL`.
    DAYTRADE_STORE_FAULTS (server/store/faults.py) wraps the store in injected faults.
    """
    if url_or_path.startswith(MONGO_SCHEMES):
        store = _open_mongo(url_or_path)
    elif url_or_path.startswith(SQLITE_SCHEME):
        store = _open_sqlite_url(url_or_path)
    else:
        store = SqliteStore(url_or_path)
    return with_faults_from_env(store)


def mongo_store_options(url: str) -> dict[str, Any]:
    """The MongoStore keyword arguments a MongoDB URL sets: database, w, journal, timeoutMS."""
    parts = urlsplit(url)
    options = {key.lower(): values[-1] for key, values in parse_qs(parts.query).items()}
    kwargs: dict[str, Any] = {}
    if database := unquote(parts.path.lstrip("/")):
        kwargs["database"] = database
    if "w" in options:
        kwargs["write_concern"] = options["w"]
    if "journal" in options:
        kwargs["journal"] = options["journal"].lower() == "true"
    if "timeoutms" in options:
        kwargs["timeout_ms"] = int(options["timeoutms"])
    return kwargs


def _open_mongo(url: str) -> Store:
    # Imported here: pymongo is slow to import and a SQLite deployment never needs it.
    from server.store.mongo import MongoStore

    return MongoStore(url, **mongo_store_options(url))


def _open_sqlite_url(url: str) -> Store:
    rest = url[len(SQLITE_SCHEME):]
    if not rest.startswith("/") or rest == "/":
        raise ValueError(f"a SQLite URL is sqlite:///relative/path or sqlite:////abs/path: {url}")
    path, _, query = rest[1:].partition("?")
    options = {k.lower(): v[-1] for k, v in parse_qs(query).items()}
    return SqliteStore(unquote(path), synchronous=options.get("synchronous", "FULL"))
