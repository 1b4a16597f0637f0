"""The one rule for where a database lives: a URL as given, a file path under the work directory."""

from __future__ import annotations

from pathlib import Path

from mlip_autopipec.database.location import database_file, is_url, resolve_location


def test_urls_and_paths():
    url = "postgresql://user:pw@host:5432/mlip"
    assert is_url(url) and not is_url("structures.db") and not is_url(Path("/a/b.db"))
    assert resolve_location(url, "/work") == url
    assert resolve_location("structures.db", "/work/run") == "/work/run/structures.db"
    assert resolve_location("/data/shared.db", "/work/run") == "/data/shared.db"
    assert resolve_location(Path("sub/s.db"), Path("/w")) == "/w/sub/s.db"
    assert database_file(url) is None and database_file("/w/s.db") == Path("/w/s.db")
