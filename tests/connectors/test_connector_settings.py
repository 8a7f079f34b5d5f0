"""One list of the settings a connector's owner chooses (services.CONNECTOR_SETTINGS): the
service's create signature, what update accepts and what the admin form edits all follow it."""

from __future__ import annotations

import inspect

import pytest

from apps.connectors import services
from apps.connectors.admin import ConnectorAdminForm
from apps.core.errors import InvalidRequestError

NOT_SETTINGS = {"merchant", "livemode", "credentials", "actor"}


def test_the_settings_are_what_connector_create_takes():
    parameters = inspect.signature(services.connector_create).parameters
    assert set(services.CONNECTOR_SETTINGS) == set(parameters) - NOT_SETTINGS


def test_update_changes_every_setting_but_the_type(make_connector, system_actor):
    connector = make_connector("psp")
    with pytest.raises(InvalidRequestError) as refused:
        services.connector_update(connector=connector, actor=system_actor, connector_type="adyen")
    assert (refused.value.code, refused.value.param) == ("parameter_unknown", "connector_type")

    updated = services.connector_update(
        connector=connector, actor=system_actor, name="renamed", priority=7, read_timeout_ms=900
    )
    assert (updated.name, updated.priority, updated.read_timeout_ms) == ("renamed", 7, 900)


def test_the_admin_form_edits_the_settings_but_the_simulated_account():
    form_fields = set(ConnectorAdminForm.Meta.fields) - {"merchant", "livemode"}
    assert form_fields == set(services.CONNECTOR_SETTINGS) - {"simulator_account"}
