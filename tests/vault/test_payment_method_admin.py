"""The back-office shows a card's brand, last4, expiry and fingerprint, never its ciphertext."""

from apps.vault.models import PaymentMethod
from tests.factories import PaymentMethodFactory
from tests.vault.conftest import VISA


def _create(merchant) -> PaymentMethod:
    return PaymentMethodFactory(merchant=merchant, number=VISA, exp_month=3, exp_year=2031)


def test_admin_lists_and_searches_without_card_data(admin_client, merchant):
    payment_method = _create(merchant)

    for query in (payment_method.public_id, "4242", payment_method.fingerprint):
        page = admin_client.get("/admin/vault/paymentmethod/", {"q": query})
        assert page.status_code == 200
        assert payment_method.public_id in page.content.decode(), query
    assert "03/2031" in page.content.decode()
    miss = admin_client.get("/admin/vault/paymentmethod/", {"q": "9999"})
    assert payment_method.public_id not in miss.content.decode()


def test_admin_detail_is_read_only_and_hides_the_ciphertext(admin_client, merchant):
    payment_method = _create(merchant)

    page = admin_client.get(f"/admin/vault/paymentmethod/{payment_method.pk}/change/")

    html = page.content.decode()
    assert page.status_code == 200
    assert payment_method.fingerprint in html
    assert "encrypted_number" not in html and "Encrypted number" not in html
    assert VISA not in html
    assert 'name="_save"' not in html  # read-only: no save button
    assert admin_client.post("/admin/vault/paymentmethod/add/").status_code == 403
