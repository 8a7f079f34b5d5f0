from django.db import migrations


class Migration(migrations.Migration):
    """Support's partial search (issue 17, item 5): part of a customer's email or of the
    cardholder's name finds the payment (`apps.intents.selectors.intent_search`). Django's
    `icontains` is `UPPER(col::text) LIKE UPPER('%term%')`; trigram GIN indexes on exactly that
    expression answer it without reading every payment. Kept here (not in intents/vault) so the
    feature's schema lives with the feature; pg_trgm ships with PostgreSQL (contrib)."""

    dependencies = [("observability", "0002_rollups"), ("vault", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "CREATE EXTENSION IF NOT EXISTS pg_trgm",
            migrations.RunSQL.noop,
        ),
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS observability_intent_email_trgm "
            "ON intents_paymentintent USING gin (UPPER(customer_email::text) gin_trgm_ops)",
            "DROP INDEX IF EXISTS observability_intent_email_trgm",
        ),
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS observability_pm_billing_name_trgm "
            "ON vault_paymentmethod USING gin (UPPER(billing_name::text) gin_trgm_ops)",
            "DROP INDEX IF EXISTS observability_pm_billing_name_trgm",
        ),
    ]
