"""The simulator as a WSGI application: `gunicorn apps.psp_simulator.wsgi:app`.

No Django here: the simulator starts in well under a second and stays light under load.
Run it as ONE process (state is in memory): `-w 1 -k gthread --threads 128`.

    /stripe/<connector>/v1/…     Stripe dialect
    /adyen/<connector>/v71/…     Adyen Checkout dialect
    /_sim/…                      control API (faults, webhooks, charges, health)
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable
from typing import Any

from apps.psp_simulator import control, settlement_api  # noqa: F401  (registers routes)
from apps.psp_simulator.adyen_api import ADYEN
from apps.psp_simulator.core import serve
from apps.psp_simulator.stripe_api import STRIPE
from apps.psp_simulator.web import Request, Response, json_response

logger = logging.getLogger("psp_simulator")

DIALECTS = {"stripe": STRIPE, "adyen": ADYEN}
DIALECT_PATH = re.compile(
    r"^/(?P<dialect>stripe|adyen)/(?P<connector>[A-Za-z0-9_.\-]+)(?P<rest>/.*)?$"
)


def _configure_logging() -> None:
    if logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(os.environ.get("PSP_SIMULATOR_LOG_LEVEL", "INFO").upper())
    logger.propagate = False


class SimulatorApp:
    def __call__(self, environ: dict[str, Any], start_response) -> Iterable[bytes]:
        started = time.monotonic()
        try:
            request = Request.from_environ(environ)
            response = self.dispatch(request)
        except Exception:
            logger.exception("simulator error on %s", environ.get("PATH_INFO"))
            response = json_response(500, {"error": "simulator internal error"})
            request = None
        if request is not None:
            logger.debug(
                "%s %s -> %s (%.0f ms)",
                request.method,
                request.path,
                response.status,
                (time.monotonic() - started) * 1000,
            )
        headers = [*response.headers, ("Content-Length", str(len(response.body)))]
        start_response(response.status_line(), headers)
        return [response.body]

    def dispatch(self, request: Request) -> Response:
        if request.path.startswith("/_sim/"):
            return control.dispatch(request)
        found = DIALECT_PATH.match(request.path)
        if found is None:
            return json_response(
                404,
                {"error": "unknown path: use /stripe/<name>/…, /adyen/<name>/… or /_sim/…"},
            )
        dialect = DIALECTS[found["dialect"]]
        return serve(dialect, found["connector"], request, found["rest"] or "/")


_configure_logging()
app = SimulatorApp()
application = app
