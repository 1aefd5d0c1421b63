"""Open what a location names: MongoDB for `mongodb://` URLs, SQLite files in a data directory
for everything else (a path, or `sqlite:///dir?synchronous=NORMAL`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from server.store.faults import with_faults_from_env
from server.store.journal_port import Directory, ShardJournal

MONGO_SCHEMES = ("mongodb://", "mongodb+srv://")
SQLITE_SCHEME = "sqlite://"


def is_mongo(location: str) -> bool:
    return location.startswith(MONGO_SCHEMES)


def open_journal(location: str, shard: int) -> ShardJournal:
    """Shard `shard`'s journal at `location`. DAYTRADE_STORE_FAULTS (server/store/faults.py)
    wraps it in injected faults."""
    if is_mongo(location):
        from server.store.mongo_journal import MongoJournal  # pymongo is slow to import

        journal: ShardJournal = MongoJournal(location, shard, **mongo_options(location))
    else:
        from server.store.sqlite_journal import SqliteJournal

        data_dir, options = sqlite_location(location)
        journal = SqliteJournal(data_dir, shard, synchronous=options.get("synchronous", "FULL"))
    return with_faults_from_env(journal)


def has_journal(location: str, shard: int) -> bool:
    """Whether shard `shard`'s journal can be read at `location` (a remote shard's data
    directory holds the other shards' journals only when they share its volume)."""
    if is_mongo(location):
        return True
    from server.store.sqlite_journal import journal_path

    return journal_path(sqlite_location(location)[0], shard).exists()


def open_directory(location: str) -> Directory:
    """The directory (credentials, partition count) at `location`."""
    if is_mongo(location):
        from server.store.mongo_journal import MongoDirectory

        return MongoDirectory(location, **mongo_options(location))
    from server.store.sqlite_journal import SqliteDirectory

    return SqliteDirectory(sqlite_location(location)[0])


def mongo_options(url: str) -> dict[str, Any]:
    """The keyword arguments a MongoDB URL sets: database (its path, default `daytrade`), and
    the options `w`, `journal` and `timeoutMS` (write concern majority with journal by default)."""
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


def sqlite_location(location: str) -> tuple[Path, dict[str, str]]:
    """The data directory and options of `dir`, `sqlite:///rel/dir` or `sqlite:////abs/dir`
    (as in SQLAlchemy), with an optional `?synchronous=NORMAL`."""
    if not location.startswith(SQLITE_SCHEME):
        return Path(location), {}
    rest = location[len(SQLITE_SCHEME):]
    if not rest.startswith("/") or rest == "/":
        raise ValueError(f"a SQLite URL is sqlite:///relative/dir or sqlite:////abs/dir: "
                         f"{location}")
    path, _, query = rest[1:].partition("?")
    options = {k.lower(): v[-1].upper() for k, v in parse_qs(query).items()}
    return Path(unquote(path)), options
