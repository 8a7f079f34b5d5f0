import pytest
from django.db import DatabaseError, connection, transaction

from apps.core.audit import Actor, audit_record
from apps.core.models import AuditLogEntry


@pytest.fixture
def entry(db):
    return audit_record(
        actor=Actor.system("test"),
        action="thing.done",
        object_type="thing",
        object_id="th_1",
        changes={"status": ["a", "b"]},
    )


def test_update_through_the_orm_is_refused_by_the_database(entry):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditLogEntry.objects.filter(pk=entry.pk).update(action="forged")
    entry.refresh_from_db()
    assert entry.action == "thing.done"


def test_delete_through_the_orm_is_refused_by_the_database(entry):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditLogEntry.objects.filter(pk=entry.pk).delete()
    assert AuditLogEntry.objects.filter(pk=entry.pk).exists()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE core_auditlogentry SET actor = 'x'",
        "DELETE FROM core_auditlogentry",
        "TRUNCATE core_auditlogentry",
    ],
)
def test_raw_sql_changes_are_refused(entry, sql):
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    assert AuditLogEntry.objects.filter(pk=entry.pk, actor="test").exists()


def test_secrets_never_reach_the_audit_log(db):
    row = audit_record(
        actor=Actor.system("t"),
        action="x",
        object_type="connector",
        object_id="c1",
        changes={"credentials": ["a", "sk_live_x"], "name": ["a", "b"]},
    )
    assert row.changes["credentials"] == ["[redacted]", "[redacted]"]
    assert row.changes["name"] == ["a", "b"]
