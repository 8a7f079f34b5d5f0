"""Back-office staff: Django users in one of the roles (apps.core.roles) serving some merchants
(the django-guardian object permission the admin scopes by)."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from guardian.shortcuts import assign_perm

from apps.core.roles import roles_bootstrap

PASSWORD = "pw"


class StaffUserFactory(factory.django.DjangoModelFactory):
    """`StaffUserFactory(role="finance", serves=[merchant])`; `superuser=True` for a superuser
    (no role needed). The roles' groups are bootstrapped if they do not exist yet."""

    class Meta:
        model = get_user_model()

    username = factory.LazyAttributeSequence(lambda o, n: f"{o.role or 'staff'}-{n}")
    password = PASSWORD
    role = None
    serves = ()
    superuser = False

    @classmethod
    def _create(cls, model_class, *, username, password, role, serves, superuser, **fields):
        manager = cls._get_manager(model_class)
        if superuser:
            user = manager.create_superuser(username, password=password, **fields)
        else:
            user = manager.create_user(username, password=password, is_staff=True, **fields)
        if role:
            group = Group.objects.filter(name=role).first()
            if group is None:
                roles_bootstrap()
                group = Group.objects.get(name=role)
            user.groups.add(group)
        for merchant in serves:
            assign_perm("merchants.serve_merchant", user, merchant)
        return user
