from django.db import migrations

# The audit log is evidence: PostgreSQL itself refuses to change or remove a row, whatever the
# code path (ORM, raw SQL, admin). Only a superuser disabling the trigger could.
SQL = """
CREATE OR REPLACE FUNCTION core_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER core_auditlogentry_append_only
    BEFORE UPDATE OR DELETE ON core_auditlogentry
    FOR EACH ROW EXECUTE FUNCTION core_refuse_change();
CREATE TRIGGER core_auditlogentry_no_truncate
    BEFORE TRUNCATE ON core_auditlogentry
    FOR EACH STATEMENT EXECUTE FUNCTION core_refuse_change();
"""

REVERSE = """
DROP TRIGGER IF EXISTS core_auditlogentry_no_truncate ON core_auditlogentry;
DROP TRIGGER IF EXISTS core_auditlogentry_append_only ON core_auditlogentry;
"""


class Migration(migrations.Migration):
    dependencies = [("core", "0001_initial")]
    operations = [migrations.RunSQL(SQL, REVERSE)]
