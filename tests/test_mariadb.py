"""The MariaDB settings a Django 1.3 site chooses (docs/databases.rst, "MariaDB / MySQL"), each
checked on the throwaway MariaDB 10.11 of this process: strict sql_mode against the empty
sql_mode of MySQL 5.1-5.5, utf8 (three bytes a character at most) against utf8mb4, InnoDB
against MyISAM. Each setting is an alias of its own (servers.extra_alias) on database master.
"""
import pytest

import servers
import support
from support import requires_mysql

pytestmark = requires_mysql

EMOJI = u"\U0001F600"  # four bytes in UTF-8: outside MySQL's three-byte "utf8"


def execute(alias, sql, params=()):
    """Run ``sql`` through ``alias``; the rows of a SELECT as a list of tuples."""
    if not sql.lstrip().upper().startswith("SELECT"):
        return support.execute(sql, params, alias=alias)
    return [tuple(row) for row in support.execute(sql, params, alias=alias, fetch=True)]


def database_errors():
    """What a refused statement raises: Django's DatabaseError, or before Django 1.6, for
    MySQLdb's OperationalError (errors 1366, 1406...), the driver's own error unwrapped."""
    from django.db.utils import DatabaseError

    return (DatabaseError, support.mysql_driver().Error)


def fresh_table(alias, definition, suffix=""):
    execute(alias, "DROP TABLE IF EXISTS settings_check")
    execute(alias, "CREATE TABLE settings_check (%s)%s" % (definition, suffix))
    support.commit(alias)


def test_strict_sql_mode_refuses_a_value_too_long_where_the_old_default_truncates_it():
    with servers.extra_alias("my_strict", "my_master") as alias:
        (mode,), = execute(alias, "SELECT @@SESSION.sql_mode")
        assert "STRICT_TRANS_TABLES" in mode, "MariaDB 10.2+ is strict by default"
        fresh_table(alias, "name VARCHAR(5)")
        with pytest.raises(database_errors()) as raised:
            execute(alias, "INSERT INTO settings_check VALUES (%s)", ["abcdefgh"])
        support.rollback(alias)
        assert "1406" in str(raised.value) or "too long" in str(raised.value)

    old_default = {"init_command": "SET SESSION sql_mode = ''"}  # MySQL 5.1-5.5's default
    with servers.extra_alias("my_lenient", "my_master", OPTIONS=old_default) as alias:
        execute(alias, "INSERT INTO settings_check VALUES (%s)", ["abcdefgh"])
        support.commit(alias)
        assert execute(alias, "SELECT name FROM settings_check") == [("abcde",)], \
            "without strict mode the value is cut to the column, with only a warning"
        support.commit(alias)


@pytest.mark.parametrize("table_charset", ["utf8", "utf8mb4"])
def test_a_four_byte_character_needs_utf8mb4_in_the_table_and_on_the_connection(table_charset):
    # Django 1.2-1.11 (and mysqlclient's default since) connect with charset "utf8": three
    # bytes a character at most.
    with servers.extra_alias("my_utf8_%s" % table_charset, "my_master",
                             OPTIONS={"charset": "utf8"}) as alias:
        fresh_table(alias, "name VARCHAR(20)", " CHARACTER SET %s" % table_charset)
        with pytest.raises(database_errors()) as raised:
            execute(alias, "INSERT INTO settings_check VALUES (%s)", [u"smile " + EMOJI])
        support.rollback(alias)
        assert "1366" in str(raised.value) or "Incorrect string value" in str(raised.value)

    with servers.extra_alias("my_utf8mb4_%s" % table_charset, "my_master",
                             OPTIONS={"charset": "utf8mb4"}) as alias:
        if table_charset == "utf8":
            with pytest.raises(database_errors()):  # the column cannot hold it either
                execute(alias, "INSERT INTO settings_check VALUES (%s)", [u"smile " + EMOJI])
            support.rollback(alias)
        else:
            execute(alias, "INSERT INTO settings_check VALUES (%s)", [u"smile " + EMOJI])
            support.commit(alias)
            assert execute(alias, "SELECT name FROM settings_check") == [(u"smile " + EMOJI,)]
            support.commit(alias)


@pytest.mark.parametrize("engine", ["InnoDB", "MyISAM"])
def test_only_innodb_rolls_back_what_a_transaction_wrote(engine):
    options = {"init_command": "SET SESSION default_storage_engine = %s" % engine}
    with servers.extra_alias("my_engine_%s" % engine.lower(), "my_master",
                             OPTIONS=options) as alias:
        fresh_table(alias, "name VARCHAR(20)")
        (found,), = execute(
            alias, "SELECT ENGINE FROM information_schema.TABLES"
            " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'settings_check'")
        assert found == engine, "Django creates tables in the session's default engine"
        support.commit(alias)
        with servers.transaction(alias):  # rolled back at its end
            execute(alias, "INSERT INTO settings_check VALUES ('rolled back')")
        left = execute(alias, "SELECT name FROM settings_check")
        support.commit(alias)
        if engine == "InnoDB":
            assert left == []
        else:  # MyISAM has no transactions: commit_on_success and TransactionMiddleware lie
            assert left == [("rolled back",)]
