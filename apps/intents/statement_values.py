"""What the checkout's hand-written statements (`created_statement`, `authorized_statement`,
`failover_statement`) write: the values of a model's fields as the ORM would send them
(`pre_save`, `get_db_prep_save`), so a field added to a model is written there as by the ORM."""

from __future__ import annotations

from datetime import datetime

from django.db import connection
from django.db.models import Field, JSONField, Model

# values the driver takes as they are, and that Django's preparation returns unchanged (outside
# JSON fields, where a str is a JSON document)
_PLAIN = (str, int, bool, datetime)


def column_values(obj: Model, fields: tuple[Field, ...], *, add: bool) -> list:
    values = []
    for field in fields:
        value = field.pre_save(obj, add)
        if value is not None and (type(value) not in _PLAIN or isinstance(field, JSONField)):
            value = field.get_db_prep_save(value, connection)
        values.append(value)
    return values
