"""Admin base class: merchant scoping (django-guardian) and audit logging of staff changes.

A staff user sees only rows of merchants on which they hold the `merchants.serve_merchant`
object permission; superusers and the `admin` group see everything."""

from __future__ import annotations

from django.apps import apps
from django.contrib import admin
from guardian.shortcuts import get_objects_for_user

from apps.core.audit import Actor, audit_record, diff


def staff_sees_all(user) -> bool:
    return user.is_superuser or user.groups.filter(name="admin").exists()


def merchant_ids_for_staff(user) -> set[int] | None:
    """None means unrestricted."""
    if staff_sees_all(user):
        return None
    merchant_model = apps.get_model("merchants", "Merchant")
    scoped = get_objects_for_user(
        user, "merchants.serve_merchant", klass=merchant_model, accept_global_perms=False
    )
    return set(scoped.values_list("id", flat=True))


class MerchantScopedAdmin(admin.ModelAdmin):
    # path from this model to its merchant id, e.g. "merchant_id" or "intent__merchant_id"
    merchant_path = "merchant_id"
    show_full_result_count = False  # no COUNT(*) over big tables on every list page

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        merchant_ids = merchant_ids_for_staff(request.user)
        if merchant_ids is None:
            return queryset
        return queryset.filter(**{f"{self.merchant_path}__in": merchant_ids})

    # Every admin change also lands in the append-only audit log.
    def _audit(self, request, obj, action: str, changes: dict) -> None:
        merchant_id = obj
        for part in self.merchant_path.split("__"):
            merchant_id = getattr(merchant_id, part, None)
        audit_record(
            actor=Actor.staff(request.user),
            action=f"admin.{action}",
            object_type=obj._meta.label_lower,
            object_id=str(getattr(obj, "public_id", None) or obj.pk),
            merchant_id=merchant_id if isinstance(merchant_id, int) else None,
            changes=changes,
        )

    def save_model(self, request, obj, form, change):
        before = {f: form.initial.get(f) for f in form.changed_data} if change else {}
        super().save_model(request, obj, form, change)
        after = {f: form.cleaned_data.get(f) for f in form.changed_data}
        self._audit(
            request,
            obj,
            "changed" if change else "added",
            {k: [str(v[0]), str(v[1])] for k, v in diff(before, after).items()},
        )

    def delete_model(self, request, obj):
        self._audit(request, obj, "deleted", {})
        super().delete_model(request, obj)
