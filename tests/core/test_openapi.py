import json

import pytest
from drf_spectacular.validation import validate_schema


@pytest.fixture
def schema(client, db):
    response = client.get("/v1/openapi.json")
    assert response.status_code == 200
    return json.loads(response.content)


def test_schema_is_valid_openapi(schema):
    validate_schema(schema)


def test_schema_has_auth_scheme_error_envelope_and_idempotency_header(schema):
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"]["scheme"] == "bearer"
    assert "ErrorEnvelope" in schema["components"]["schemas"]
    update = schema["paths"]["/v1/account"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in update["parameters"])
    assert update["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ErrorEnvelope"
    )


def test_docs_page_is_served_from_local_static_files(client, db):
    page = client.get("/docs/").content.decode()
    assert "swagger-ui" in page
    assert "cdn" not in page.lower()


def test_schema_generation_is_free_of_warnings(db):
    # `manage.py check --deploy` reports drf-spectacular's warnings too: it must stay clean
    from django.core.management import call_command
    from drf_spectacular.drainage import GENERATOR_STATS

    GENERATOR_STATS.reset()
    call_command("spectacular", "--fail-on-warn", "--file", "/dev/null")
