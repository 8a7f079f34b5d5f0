from django.db import migrations, models

# The account guard becomes a deferred constraint trigger: the posting writes its entries and
# the account balances in one statement, and a trigger inside that statement would not see the
# entries yet. At commit it sees everything, and still refuses a balance without its entry.
SQL = """
DROP TRIGGER IF EXISTS ledger_account_guard ON ledger_account;
CREATE CONSTRAINT TRIGGER ledger_account_guard
    AFTER UPDATE ON ledger_account
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_account_guard();
"""

REVERSE = """
DROP TRIGGER IF EXISTS ledger_account_guard ON ledger_account;
CREATE TRIGGER ledger_account_guard
    BEFORE UPDATE ON ledger_account
    FOR EACH ROW EXECUTE FUNCTION ledger_account_guard();
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0002_ledger_integrity_triggers")]

    operations = [
        migrations.RemoveConstraint(
            model_name="ledgeraccount",
            name="ledger_account_unique_code",
        ),
        # code last: the posting's `code = ANY(...)` lock query is an index range scan
        migrations.AddConstraint(
            model_name="ledgeraccount",
            constraint=models.UniqueConstraint(
                fields=("merchant_id", "livemode", "currency", "code"),
                name="ledger_account_unique_code",
            ),
        ),
        migrations.RunSQL(SQL, REVERSE),
    ]
