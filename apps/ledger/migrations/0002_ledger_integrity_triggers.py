from django.db import migrations

# PostgreSQL, not Python, guarantees the ledger's invariants, whatever the code path (ORM, raw
# SQL, admin, a psql session). All triggers are ordinary (origin-enabled) triggers, so only a
# superuser setting session_replication_role = replica (the test flush) can bypass them.
SQL = r"""
-- 1. The journal is append-only.
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger: % is append-only: % refused (post a reversal instead)',
        TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER ledger_transaction_append_only
    BEFORE UPDATE OR DELETE ON ledger_transaction
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_transaction_no_truncate
    BEFORE TRUNCATE ON ledger_transaction
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_entry_append_only
    BEFORE UPDATE OR DELETE ON ledger_entry
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_entry_no_truncate
    BEFORE TRUNCATE ON ledger_entry
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_account_no_delete
    BEFORE DELETE ON ledger_account
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_account_no_truncate
    BEFORE TRUNCATE ON ledger_account
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- 2. An account's identity never changes, and its balance only moves to the balance_after of
--    the entry written at its new version (so a balance cannot drift from its entries).
CREATE OR REPLACE FUNCTION ledger_account_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    entry_balance bigint;
BEGIN
    IF (NEW.merchant_id, NEW.livemode, NEW.code, NEW.currency, NEW.kind, NEW.normal_balance,
        NEW.created_at)
       IS DISTINCT FROM
       (OLD.merchant_id, OLD.livemode, OLD.code, OLD.currency, OLD.kind, OLD.normal_balance,
        OLD.created_at) THEN
        RAISE EXCEPTION 'ledger: account % identity is immutable', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.version = OLD.version THEN
        IF (NEW.posted_balance, NEW.pending_debits, NEW.pending_credits)
           IS DISTINCT FROM (OLD.posted_balance, OLD.pending_debits, OLD.pending_credits) THEN
            RAISE EXCEPTION 'ledger: account % balances move only with entries', OLD.id
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.version < OLD.version THEN
        RAISE EXCEPTION 'ledger: account % version cannot go back', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    SELECT balance_after INTO entry_balance
      FROM ledger_entry WHERE account_id = NEW.id AND account_version = NEW.version;
    IF NOT FOUND OR entry_balance <> NEW.posted_balance THEN
        RAISE EXCEPTION 'ledger: account % balance % has no entry at version %',
            OLD.id, NEW.posted_balance, NEW.version
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER ledger_account_guard
    BEFORE UPDATE ON ledger_account
    FOR EACH ROW EXECUTE FUNCTION ledger_account_guard();

-- 3. An entry is in its account's currency, on an account of the journal's merchant and mode,
--    in a phase its journal's kind allows.
CREATE OR REPLACE FUNCTION ledger_entry_check_account() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    acc record;
    txn record;
BEGIN
    SELECT currency, merchant_id, livemode INTO acc FROM ledger_account WHERE id = NEW.account_id;
    SELECT kind, merchant_id, livemode INTO txn FROM ledger_transaction
     WHERE id = NEW.transaction_id;
    -- a missing row is left to the (deferred) foreign keys
    IF acc.currency IS NOT NULL AND acc.currency <> NEW.currency THEN
        RAISE EXCEPTION 'ledger: entry currency % does not match account % currency %',
            NEW.currency, NEW.account_id, acc.currency
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_entry_currency_matches_account';
    END IF;
    IF acc.merchant_id IS NOT NULL AND txn.merchant_id IS NOT NULL
       AND (acc.merchant_id <> txn.merchant_id OR acc.livemode <> txn.livemode) THEN
        RAISE EXCEPTION 'ledger: account % is not of journal %''s merchant and mode',
            NEW.account_id, NEW.transaction_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_entry_account_of_merchant';
    END IF;
    IF txn.kind IS NOT NULL AND NOT (
           (NEW.phase = 'hold' AND txn.kind = 'authorization_hold')
        OR (NEW.phase = 'release' AND txn.kind IN ('capture', 'void', 'expiry'))
        OR (NEW.phase = 'posted' AND txn.kind NOT IN ('authorization_hold', 'void', 'expiry'))
    ) THEN
        RAISE EXCEPTION 'ledger: a % journal cannot have % entries', txn.kind, NEW.phase
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_entry_phase_of_kind';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER ledger_entry_check_account
    BEFORE INSERT ON ledger_entry
    FOR EACH ROW EXECUTE FUNCTION ledger_entry_check_account();

-- 4. At commit, every journal's entries sum to zero per currency and phase (posted, hold,
--    release). Deferred so that a journal's entries can be written in any order.
CREATE OR REPLACE FUNCTION ledger_entry_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT currency, phase, sum(amount) AS total INTO bad
      FROM ledger_entry WHERE transaction_id = NEW.transaction_id
     GROUP BY currency, phase HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger: journal % does not balance: % % entries sum to %',
            NEW.transaction_id, bad.currency, bad.phase, bad.total
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_entry_journal_balanced';
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER ledger_entry_journal_balanced
    AFTER INSERT ON ledger_entry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_entry_check_balanced();

-- 5. At commit, a hold's resolution releases exactly what the hold holds and a capture posts at
--    most that, never after the hold expired; a reversal is the exact negation of its original.
CREATE OR REPLACE FUNCTION ledger_transaction_check_links() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    linked record;
    mismatches integer;
    held bigint;
    posted bigint;
BEGIN
    IF NEW.resolves_id IS NOT NULL THEN
        SELECT kind, merchant_id, livemode, currency, expires_at INTO linked
          FROM ledger_transaction WHERE id = NEW.resolves_id;
        IF linked.kind <> 'authorization_hold' OR linked.merchant_id <> NEW.merchant_id
           OR linked.livemode <> NEW.livemode OR linked.currency <> NEW.currency THEN
            RAISE EXCEPTION 'ledger: journal % resolves % which is not its hold',
                NEW.id, NEW.resolves_id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_resolution_valid';
        END IF;
        IF NEW.kind = 'capture' AND NEW.created_at >= linked.expires_at THEN
            RAISE EXCEPTION 'ledger: hold % expired before capture %', NEW.resolves_id, NEW.id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_resolution_valid';
        END IF;
        SELECT count(*) INTO mismatches FROM (
            SELECT account_id FROM (
                SELECT account_id, amount FROM ledger_entry
                 WHERE transaction_id = NEW.resolves_id AND phase = 'hold'
                UNION ALL
                SELECT account_id, amount FROM ledger_entry
                 WHERE transaction_id = NEW.id AND phase = 'release'
            ) pending GROUP BY account_id HAVING sum(amount) <> 0
        ) unreleased;
        SELECT coalesce(sum(amount) FILTER (WHERE amount > 0), 0) INTO held
          FROM ledger_entry WHERE transaction_id = NEW.resolves_id AND phase = 'hold';
        SELECT coalesce(sum(amount) FILTER (WHERE amount > 0), 0) INTO posted
          FROM ledger_entry WHERE transaction_id = NEW.id AND phase = 'posted';
        IF mismatches > 0 OR posted > held THEN
            RAISE EXCEPTION 'ledger: journal % must release hold % exactly and post at most %',
                NEW.id, NEW.resolves_id, held
                USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_resolution_valid';
        END IF;
    END IF;
    IF NEW.reverses_id IS NOT NULL THEN
        SELECT kind, merchant_id, livemode, currency INTO linked
          FROM ledger_transaction WHERE id = NEW.reverses_id;
        -- holds and their resolutions cannot be negated: their hold/release entries would
        -- fail the EXCEPT ALL comparison below, as reversals carry posted entries only
        IF linked.kind IN ('reversal', 'payout_failure')
           OR linked.merchant_id <> NEW.merchant_id OR linked.livemode <> NEW.livemode
           OR linked.currency <> NEW.currency THEN
            RAISE EXCEPTION 'ledger: journal % cannot reverse %', NEW.id, NEW.reverses_id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_reversal_valid';
        END IF;
        SELECT count(*) INTO mismatches FROM (
            (SELECT account_id, -amount, phase FROM ledger_entry
              WHERE transaction_id = NEW.reverses_id
             EXCEPT ALL
             SELECT account_id, amount, phase FROM ledger_entry WHERE transaction_id = NEW.id)
            UNION ALL
            (SELECT account_id, amount, phase FROM ledger_entry WHERE transaction_id = NEW.id
             EXCEPT ALL
             SELECT account_id, -amount, phase FROM ledger_entry
              WHERE transaction_id = NEW.reverses_id)
        ) differences;
        IF mismatches > 0 THEN
            RAISE EXCEPTION 'ledger: journal % is not the exact negation of %',
                NEW.id, NEW.reverses_id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_reversal_valid';
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER ledger_transaction_links_valid
    AFTER INSERT ON ledger_transaction
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW.resolves_id IS NOT NULL OR NEW.reverses_id IS NOT NULL)
    EXECUTE FUNCTION ledger_transaction_check_links();
"""

REVERSE = """
DROP TRIGGER IF EXISTS ledger_transaction_links_valid ON ledger_transaction;
DROP TRIGGER IF EXISTS ledger_entry_journal_balanced ON ledger_entry;
DROP TRIGGER IF EXISTS ledger_entry_check_account ON ledger_entry;
DROP TRIGGER IF EXISTS ledger_account_guard ON ledger_account;
DROP TRIGGER IF EXISTS ledger_account_no_truncate ON ledger_account;
DROP TRIGGER IF EXISTS ledger_account_no_delete ON ledger_account;
DROP TRIGGER IF EXISTS ledger_entry_no_truncate ON ledger_entry;
DROP TRIGGER IF EXISTS ledger_entry_append_only ON ledger_entry;
DROP TRIGGER IF EXISTS ledger_transaction_no_truncate ON ledger_transaction;
DROP TRIGGER IF EXISTS ledger_transaction_append_only ON ledger_transaction;
DROP FUNCTION IF EXISTS ledger_transaction_check_links();
DROP FUNCTION IF EXISTS ledger_entry_check_balanced();
DROP FUNCTION IF EXISTS ledger_entry_check_account();
DROP FUNCTION IF EXISTS ledger_account_guard();
DROP FUNCTION IF EXISTS ledger_refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]
    operations = [migrations.RunSQL(SQL, REVERSE)]
