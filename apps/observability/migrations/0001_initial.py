from django.db import migrations


class Migration(migrations.Migration):
    """The scrape-time gauge `pp_intents_needing_review` counts flagged intents at every scrape:
    a partial index keeps that an index-only lookup over the (few) flagged rows."""

    # the earliest migration the index needs (needs_review is in intents 0001): a test that
    # migrates routing back and forth must not take this app's tables with it
    dependencies = [("intents", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS observability_intent_needs_review "
            "ON intents_paymentintent (id) WHERE needs_review",
            "DROP INDEX IF EXISTS observability_intent_needs_review",
        )
    ]
