"""PreparedQuery: prepared once per connection, again after a reconnect, plain off PostgreSQL."""

from __future__ import annotations

import datetime
import threading

import psycopg
import pytest
from asgiref.sync import async_to_sync
from django.db import OperationalError, ProgrammingError, connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from django_perf.db import PreparedQuery, bulk_insert
from django_perf.db.prepared import _names_on, to_dollar_params
from testproject.bulkdemo.models import Kitchen, Token

JOIN = (
    "SELECT k.name, t.label FROM bulkdemo_kitchen k JOIN bulkdemo_token t ON t.id = k.token_id"
    " WHERE k.counter >= %s AND t.label <> %s ORDER BY k.name"
)
EXPECTED = [("a", "one"), ("b", "one"), ("c", "two")]


@pytest.fixture
def kitchen() -> None:
    one, two = Token.objects.create(label="one"), Token.objects.create(label="two")
    rows = [{"name": "a", "token": one}, {"name": "b", "token": one}, {"name": "c", "token": two}]
    bulk_insert(Kitchen, [*rows, {"name": "z", "counter": -1}])


def statements(queries: CaptureQueriesContext, word: str) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith(word)]


def server_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements ORDER BY name")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT %s", ("SELECT $1", 1)),
        ("a = %s AND b = %s", ("a = $1 AND b = $2", 2)),
        ("name LIKE 'x%%' AND id = %s", ("name LIKE 'x%' AND id = $1", 1)),
        ("SELECT 1", ("SELECT 1", 0)),
    ],
)
def test_placeholders_become_numbered_parameters(sql, expected):
    assert to_dollar_params(sql) == expected


@pytest.mark.parametrize("sql", ["id = %(id)s", "x = %d", "trailing %"])
def test_other_placeholders_are_refused(sql):
    with pytest.raises(ValueError, match="%s placeholders only"):
        PreparedQuery(sql)


def test_wrong_numbers_of_parameters_or_types_are_refused():
    with pytest.raises(ValueError, match="1 types for 2 placeholders"):
        PreparedQuery("SELECT %s, %s", types=["int"])
    with pytest.raises(ValueError, match="takes 2 parameters, got 1"):
        PreparedQuery(JOIN).fetchall([1])


@pytest.mark.django_db
def test_results_match_the_plain_statement(kitchen):
    query = PreparedQuery(JOIN)
    with connection.cursor() as cursor:
        cursor.execute(JOIN, [0, ""])
        assert cursor.fetchall() == EXPECTED
    assert query.fetchall([0, ""]) == EXPECTED
    assert query.fetchone([0, "one"]) == ("c", "two")
    assert PreparedQuery("UPDATE bulkdemo_kitchen SET counter = %s").execute([3]) == 4


@pytest.mark.django_db
@pytest.mark.postgres
def test_prepared_once_per_connection(kitchen):
    query = PreparedQuery(JOIN + " /* once */")  # a statement no earlier test prepared
    with CaptureQueriesContext(connection) as queries:
        for _ in range(5):
            assert query.fetchall([0, ""]) == EXPECTED
    assert len(statements(queries, "PREPARE")) == 1
    assert statements(queries, "EXECUTE") == [f"EXECUTE \"{query.name}\"(0, '')"] * 5
    assert query.name in server_statements()
    assert query.is_prepared()
    assert PreparedQuery(JOIN + " /* once */").name == query.name  # same statement, same name
    assert PreparedQuery(JOIN).name != query.name


@pytest.mark.django_db
@pytest.mark.postgres
def test_parameter_types_can_be_given():
    query = PreparedQuery("SELECT %s + 1, %s", types=["bigint", "text"])
    assert query.fetchone([41, "x"]) == (42, "x")


@pytest.mark.django_db
@pytest.mark.postgres
def test_output_only_parameters_need_their_type():
    """As documented: PostgreSQL prepares a parameter it cannot place as text."""
    day = datetime.date(2024, 1, 2)
    assert PreparedQuery("SELECT %s /* untyped */").fetchone([True]) == ("true",)
    assert PreparedQuery("SELECT %s, %s", types=["boolean", "date"]).fetchone([True, day]) == (
        True,
        day,
    )
    assert PreparedQuery("SELECT %s::date").fetchone([day]) == (day,)


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_a_new_connection_prepares_again(kitchen):
    query = PreparedQuery(JOIN)
    assert query.fetchall([0, ""]) == EXPECTED
    connection.close()
    assert not query.is_prepared()
    with CaptureQueriesContext(connection) as queries:
        assert query.fetchall([0, ""]) == EXPECTED
    assert len(statements(queries, "PREPARE")) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_it_survives_the_server_dropping_the_connection(kitchen):
    query = PreparedQuery(JOIN)
    assert query.fetchall([0, ""]) == EXPECTED
    pid = connection.connection.info.backend_pid
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    with pytest.raises(OperationalError):
        query.fetchall([0, ""])  # the first use finds the connection dead, as any query would
    connection.close_if_unusable_or_obsolete()  # what Django does at the end of each request
    assert query.fetchall([0, ""]) == EXPECTED
    assert query.name in server_statements()


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_statements_dropped_behind_its_back_are_prepared_again(kitchen):
    query = PreparedQuery(JOIN)
    assert query.fetchall([0, ""]) == EXPECTED
    with connection.connection.cursor() as raw:  # e.g. a pooler's DISCARD ALL between clients
        raw.execute("DEALLOCATE ALL")
    with CaptureQueriesContext(connection) as queries:
        assert query.fetchall([0, ""]) == EXPECTED
    assert len(statements(queries, "PREPARE")) == 1
    with connection.connection.cursor() as raw:
        raw.execute("DEALLOCATE ALL")
    with pytest.raises(ProgrammingError, match="does not exist"), transaction.atomic():
        query.fetchall([0, ""])  # inside a transaction the failed statement cannot be retried


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_a_statement_lost_with_autocommit_off_fails_as_itself(kitchen):
    """No retry in the transaction set_autocommit(False) opened: the real error surfaces."""
    query = PreparedQuery(JOIN)
    assert query.fetchall([0, ""]) == EXPECTED
    with connection.connection.cursor() as raw:
        raw.execute("DEALLOCATE ALL")
    transaction.set_autocommit(False)
    try:
        with pytest.raises(ProgrammingError, match="does not exist"):
            query.fetchall([0, ""])
    finally:
        transaction.rollback()
        transaction.set_autocommit(True)
    assert query.fetchall([0, ""]) == EXPECTED  # prepared again once out of it


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_one_statement_dropped_leaves_the_others_prepared(kitchen):
    """Losing one statement re-prepares that one only; the others still run as prepared."""
    join, count = PreparedQuery(JOIN), PreparedQuery("SELECT count(*) FROM bulkdemo_kitchen")
    assert join.fetchall([0, ""]) == EXPECTED
    counted = count.fetchone()
    with connection.connection.cursor() as raw:
        raw.execute(f'DEALLOCATE "{join.name}"')
    with CaptureQueriesContext(connection) as queries:
        assert join.fetchall([0, ""]) == EXPECTED
        assert count.fetchone() == counted
    [prepare] = statements(queries, "PREPARE")  # the dropped one only
    assert join.name in prepare
    assert set(server_statements()) >= {join.name, count.name}


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_a_statement_prepared_by_an_earlier_copy_is_used(kitchen):
    """A second PreparedQuery of the same SQL finds it prepared (same name), outside atomic."""
    first = PreparedQuery(JOIN)
    assert first.fetchall([0, ""]) == EXPECTED
    _names_on(connection.connection).pop(first.name)  # as if this process lost track
    assert PreparedQuery(JOIN).fetchall([0, ""]) == EXPECTED


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_each_thread_connection_prepares_its_own(kitchen):
    query = PreparedQuery(JOIN)
    results = []

    def work():
        results.append((query.fetchall([0, ""]), query.is_prepared()))
        connection.close()

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [(EXPECTED, True)] * 3
    assert not query.is_prepared()  # this thread's connection never ran it


@pytest.mark.django_db
@pytest.mark.postgres
def test_the_setting_turns_preparing_off(kitchen):
    with (
        override_settings(DJANGO_PERF={"PREPARED_STATEMENTS": False}),
        CaptureQueriesContext(connection) as queries,
    ):
        assert PreparedQuery(JOIN).fetchall([0, ""]) == EXPECTED
    assert statements(queries, "PREPARE") == statements(queries, "EXECUTE") == []


@pytest.mark.django_db
@pytest.mark.sqlite
def test_other_databases_run_the_statement_as_it_is(kitchen):
    with CaptureQueriesContext(connection) as queries:
        assert PreparedQuery(JOIN).fetchall([0, ""]) == EXPECTED
    (sql,) = [q["sql"] for q in queries]
    assert sql.startswith("SELECT k.name")


@pytest.mark.django_db
def test_async_forms(kitchen):
    query = PreparedQuery(JOIN)
    assert async_to_sync(query.afetchall)([0, ""]) == EXPECTED
    assert async_to_sync(query.afetchone)([0, "one"]) == ("c", "two")


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_one_name_for_two_statements_is_an_error_not_the_other_results():
    first = PreparedQuery("SELECT 'a' /* named */", name="named_twice")
    second = PreparedQuery("SELECT 'b' /* named */", name="named_twice")
    assert first.fetchone() == ("a",)
    with pytest.raises(ProgrammingError, match="'named_twice' is already used on this connection"):
        second.fetchone()
    assert first.fetchone() == ("a",)


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_a_name_prepared_elsewhere_with_other_sql_is_an_error():
    """The server has the name (another process's PREPARE, a lost track): compare its SQL."""
    with connection.cursor() as cursor:
        cursor.execute("PREPARE named_elsewhere AS SELECT 'other'")
    with pytest.raises(ProgrammingError, match="'named_elsewhere' is already used"):
        PreparedQuery("SELECT 'mine'", name="named_elsewhere").fetchone()
    mine = PreparedQuery("SELECT 'mine'", name="named_mine")
    assert mine.fetchone() == ("mine",)
    _names_on(connection.connection).pop(mine.name)  # as if this process lost track
    assert PreparedQuery("SELECT 'mine'", name="named_mine").fetchone() == ("mine",)


def test_names_postgresql_would_truncate_are_refused():
    PreparedQuery("SELECT 1", name="n" * 63)
    with pytest.raises(ValueError, match="longer than 63 bytes"):
        PreparedQuery("SELECT 1", name="n" * 64)
    with pytest.raises(ValueError, match="longer than 63 bytes"):
        PreparedQuery("SELECT 1", name="é" * 32)  # 64 bytes in UTF-8
