"""gunicorn.conf.py's worker start-up: the lazily compiled validator regexes are compiled
before the worker takes requests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from django.core.validators import EmailValidator, URLValidator
from django.utils.functional import empty


def _conf():
    path = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"
    spec = importlib.util.spec_from_file_location("gunicorn_conf", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_started_worker_has_the_validators_regexes_compiled(monkeypatch):
    lazy = [
        EmailValidator.__dict__["domain_regex"],
        EmailValidator.__dict__["user_regex"],
        URLValidator.__dict__["regex"],
    ]
    for regex in lazy:  # as in a fresh process: not compiled yet
        monkeypatch.setattr(regex, "_wrapped", empty)

    monkeypatch.setattr("gc.freeze", lambda: None)  # not this test process's objects
    _conf().post_worker_init(worker=None)

    assert all(regex._wrapped is not empty for regex in lazy)
