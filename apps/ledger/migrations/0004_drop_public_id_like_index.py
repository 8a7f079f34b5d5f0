from django.db import migrations

# public_id is looked up by equality (the unique index); the varchar_pattern_ops index Django adds
# for LIKE queries on unique CharFields only costs a random b-tree insert on every posting.
SQL = """
DO $$
DECLARE
    idx text;
BEGIN
    FOR idx IN SELECT indexname FROM pg_indexes
               WHERE tablename = 'ledger_transaction'
                 AND indexname LIKE 'ledger_transaction_public_id_%_like'
    LOOP
        EXECUTE format('DROP INDEX %I', idx);
    END LOOP;
END;
$$;
"""

REVERSE = """
CREATE INDEX IF NOT EXISTS ledger_transaction_public_id_9c92ff37_like
    ON ledger_transaction (public_id varchar_pattern_ops);
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0003_account_code_index_and_deferred_guard")]
    operations = [migrations.RunSQL(SQL, REVERSE)]
