from apps.events.models import OutboxEvent


def outbox_for_object(*, object_id: str):
    return OutboxEvent.objects.filter(object_id=object_id).order_by("sequence")
