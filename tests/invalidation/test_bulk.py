"""The bulk write helpers invalidate like post_save, through rows_changed, once they commit."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from django.db import transaction
from django.test import override_settings

from django_perf.cache.invalidation import register, registry, tagged_key
from django_perf.db import bulk_insert, bulk_update, bulk_upsert
from django_perf.db.notify import listening
from testproject.bulkdemo.models import Account, Item

pytestmark = pytest.mark.django_db(transaction=True)


def account(code: str, **fields: str) -> dict[str, str]:
    return {"tenant": "t", "code": code, "email": f"{code}@x.org", "name": code, **fields}


@pytest.fixture
def cache(configure_cache):
    return configure_cache("memory", "database")


@pytest.fixture
def registered() -> Iterator[None]:
    registration = register(
        Account,
        keys=lambda a: [f"account:{a.tenant}:{a.code}"],
        tags=lambda a: [f"tenant:{a.tenant}"],
    )
    yield
    registry.remove(registration)


def page(cache, tenant: str = "t") -> str:
    """A list page of a tenant's accounts, cached under the tenant's tag."""
    key = tagged_key("accounts", [f"tenant:{tenant}"])
    cache.set(key, "page")
    return key


@pytest.mark.usefixtures("registered")
def test_bulk_insert_drops_what_the_new_rows_name(cache):
    cache.set_many({"account:t:1": "stale", "account:t:9": "kept"})
    page(cache)

    assert bulk_insert(Account, [account("1"), account("2")]) == 2

    assert cache.get_many(["account:t:1", "account:t:9"]) == {"account:t:9": "kept"}
    assert cache.get(tagged_key("accounts", ["tenant:t"])) is None


# Both staging paths of bulk_update/bulk_upsert on PostgreSQL: unnest, and COPY.
@pytest.mark.parametrize("copy_from", [10_000, 1], ids=["unnest", "copy"])
@pytest.mark.usefixtures("registered")
def test_bulk_update_and_bulk_upsert_drop_what_the_rows_name(cache, copy_from):
    pks = bulk_insert(Account, [account(str(i)) for i in range(5)], returning=True)
    cache.set_many({f"account:t:{i}": "stale" for i in range(6)})

    with override_settings(DJANGO_PERF={"BULK_COPY_MIN_ROWS": copy_from}):
        assert (
            bulk_update(
                Account, [{"id": pks[0], "name": "x"}, {"id": pks[1], "name": "y"}], ["name"]
            )
            == 2
        )
        assert cache.get_many([f"account:t:{i}" for i in range(3)]) == {"account:t:2": "stale"}

        result = bulk_upsert(
            Account, [account("2", name="z"), account("5")], ["tenant", "code"], ["name"]
        )
        assert (len(result.inserted_pks), len(result.updated_pks)) == (1, 1)

    assert cache.get_many([f"account:t:{i}" for i in range(6)]) == {
        "account:t:3": "stale",
        "account:t:4": "stale",
    }


@pytest.mark.usefixtures("registered")
def test_a_bulk_write_invalidates_when_its_transaction_commits_and_not_after_a_rollback(cache):
    pks = bulk_insert(Account, [account("1")], returning=True)
    cache.set("account:t:1", "old")

    with transaction.atomic():
        bulk_update(Account, [{"id": pks[0], "name": "new"}], ["name"])
        assert cache.get("account:t:1") == "old"  # other readers still see the old row too
    assert cache.get("account:t:1") is None

    cache.set("account:t:1", "new")
    with contextlib.suppress(RuntimeError), transaction.atomic():
        bulk_update(Account, [{"id": pks[0], "name": "never"}], ["name"])
        raise RuntimeError("abort")
    assert cache.get("account:t:1") == "new"


def test_bulk_helpers_only_fetch_primary_keys_for_registered_models():
    assert not listening(Item)
    registration = register(Item, keys=lambda item: [f"item:{item.pk}"])
    try:
        assert listening(Item)
    finally:
        registry.remove(registration)
    assert not listening(Item)
