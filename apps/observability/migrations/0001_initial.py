from django.db import migrations


class Migration(migrations.Migration):
    """The scrape-time gauge `pp_intents_needing_review` counts flagged intents at every scrape:
    a partial index keeps that an index-only lookup over the (few) flagged rows."""

    dependencies = [("intents", "0008_connector_moved")]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS observability_intent_needs_review "
            "ON intents_paymentintent (id) WHERE needs_review",
            "DROP INDEX IF EXISTS observability_intent_needs_review",
        )
    ]
