"""Prefixed random public ids (`pi_…`, `acct_…`) for the outside; bigint keys stay inside."""

import secrets
import string

from django.db import models

_ALPHABET = string.ascii_letters + string.digits
PUBLIC_ID_RANDOM_LENGTH = 24  # 24 base62 chars ~ 143 bits: unguessable, collision-free in practice


_SPACE = len(_ALPHABET) ** PUBLIC_ID_RANDOM_LENGTH


def new_public_id(prefix: str) -> str:
    # one uniform draw over every possible id, written in base 62: the same distribution as a
    # choice per character, with one read of the OS's randomness instead of 24 (ids are made
    # on every write of the checkout plane)
    number = secrets.randbelow(_SPACE)
    chars = []
    for _ in range(PUBLIC_ID_RANDOM_LENGTH):
        number, digit = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return f"{prefix}_{''.join(chars)}"


class PublicIdField(models.CharField):
    """A unique CharField that fills itself with `<prefix>_<random>` on first save."""

    def __init__(self, *args, prefix: str, **kwargs):
        self.prefix = prefix
        kwargs.setdefault("max_length", 40)
        kwargs.setdefault("unique", True)
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["prefix"] = self.prefix
        if not self.unique:  # said explicitly: the default here is unique
            kwargs["unique"] = False
        return name, path, args, kwargs

    def pre_save(self, model_instance, add):
        value = getattr(model_instance, self.attname)
        if not value:
            value = new_public_id(self.prefix)
            setattr(model_instance, self.attname, value)
        return value
