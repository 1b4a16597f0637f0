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


def test_a_url_is_shown_without_its_password():
    from mlip_autopipec.database.location import has_password, redact_url

    assert redact_url("postgresql://user:s3cret@host:5432/db") == "postgresql://user:***@host:5432/db"
    assert (
        redact_url("postgresql://user:p%40ss:w@host/db") == "postgresql://user:***@host/db"
    )  # ':' and '@' in the password
    assert redact_url("postgresql://user@host:5432/db") == "postgresql://user@host:5432/db"
    assert "zz" not in redact_url("postgresql://u:zz@host:notaport/db")  # a malformed URL keeps no user part
    assert has_password("postgresql://u:p@h/db") and not has_password("postgresql://u@h/db")


def test_campaign_names():
    import pytest

    from mlip_autopipec.database.location import campaign_of, check_campaign, default_campaign
    from mlip_autopipec.exceptions import DatabaseError

    assert default_campaign("/work/runs/Cu bulk-2024") == "cu_bulk_2024"
    assert default_campaign(Path("/w/2024_run")) == "run_2024_run"  # no leading digit
    assert default_campaign("/w/pg_stuff") == "run_pg_stuff"  # pg_ belongs to PostgreSQL
    assert default_campaign("/w/" + "x" * 100) == "x" * 63
    assert default_campaign("/w/---") == "campaign"
    assert campaign_of("mine", "/w/run") == "mine" and campaign_of(None, "/w/run") == "run"
    for bad in ("Cu", "a-b", "", "pg_x", "1abc", "x" * 64, "information_schema"):
        with pytest.raises(DatabaseError, match="not a valid campaign name"):
            check_campaign(bad)
