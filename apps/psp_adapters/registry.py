"""Maps connector types to adapter classes."""

from __future__ import annotations

from apps.psp_adapters.contract import ConnectorConfig, PSPAdapter

_ADAPTERS: dict[str, type] = {}


def register(connector_type: str):
    def decorator(cls):
        cls.connector_type = connector_type
        _ADAPTERS[connector_type] = cls
        return cls

    return decorator


def connector_types() -> list[str]:
    _load_builtin()
    return sorted(_ADAPTERS)


def get_adapter(config: ConnectorConfig) -> PSPAdapter:
    _load_builtin()
    try:
        cls = _ADAPTERS[config.connector_type]
    except KeyError:
        raise LookupError(f"no adapter for connector type {config.connector_type!r}") from None
    return cls(config)


def _load_builtin() -> None:
    # imported lazily so the registry module itself has no import cycle with the adapters
    from apps.psp_adapters import adyen, stripe  # noqa: F401
