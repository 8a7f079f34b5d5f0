import re

from apps.core.ids import new_public_id


def test_public_ids_are_prefixed_random_and_unique():
    ids = {new_public_id("pi") for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"pi_[A-Za-z0-9]{24}", i) for i in ids)


def test_models_get_prefixed_public_ids_and_bigint_keys(merchant):
    assert merchant.public_id.startswith("acct_")
    assert isinstance(merchant.pk, int)
