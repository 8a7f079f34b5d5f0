"""Seeds the decline-handling table from today's hard/soft table: hard -> do_not_retry, soft ->
retry_elsewhere, authentication_required -> step_up_3ds (for every connector type: `*`)."""

from django.db import migrations

from apps.psp_adapters.decline_codes import DECLINE_CLASSES, HARD


def seed(apps, schema_editor):
    DeclineHandling = apps.get_model("risk", "DeclineHandling")
    rows = []
    for code, klass in sorted(DECLINE_CLASSES.items()):
        decision = "do_not_retry" if klass == HARD else "retry_elsewhere"
        if code == "authentication_required":
            decision = "step_up_3ds"
        rows.append(
            DeclineHandling(
                connector_type="*", code=code, decision=decision, updated_by="seed", note=klass
            )
        )
    DeclineHandling.objects.bulk_create(rows, ignore_conflicts=True)


class Migration(migrations.Migration):
    dependencies = [("risk", "0002_decline_handling")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
