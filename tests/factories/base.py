"""What the factories share: a row is made by the owning app's service, so it carries exactly
what production code writes (encryption, hashing, audit entries, outbox events, ledger
journals), and the database's CHECKs and triggers see a valid row. Nothing is built unsaved:
an object that skipped its service would be one production never makes."""

from __future__ import annotations

import factory

from apps.core.audit import Actor


def tests_actor() -> Actor:
    return Actor.system("tests")


class ServiceFactory(factory.django.DjangoModelFactory):
    """A factory whose `_create` calls the app's service (given `actor`, default the tests'
    system actor) instead of `Model.objects.create`."""

    class Meta:
        abstract = True

    actor = factory.LazyFunction(tests_actor)

    @classmethod
    def _build(cls, model_class, *args, **kwargs):
        raise TypeError(
            f"{cls.__name__} makes rows through the service only: call it (create), not build"
        )
