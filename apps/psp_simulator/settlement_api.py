"""Where the settlement reports are served (issue 14), and their control endpoints.

POST /stripe/<name>/v1/reporting/report_runs        report_type, parameters[interval_start|end]
GET  /stripe/<name>/v1/reporting/report_runs/<frr_…>
GET  /stripe/<name>/v1/files/<file_…>/contents      the CSV
GET  /adyen/<name>/reports/download/MerchantAccount/<account>/settlement_detail_report_batch_<N>.csv

GET|PATCH|DELETE /_sim/connectors/<name>/settlement  delay, fees, discrepancy rates; batches
                                                       and what was injected
POST /_sim/connectors/<name>/settlement/settle        {"up_to": "YYYY-MM-DD"}
"""

from __future__ import annotations

from datetime import date

from apps.psp_simulator import control
from apps.psp_simulator.adyen_api import ADYEN, _api_error
from apps.psp_simulator.core import Context, Execution
from apps.psp_simulator.settlement import (
    STRIPE_REPORT_TYPES,
    InvalidSettlementConfig,
    SettlementConfig,
)
from apps.psp_simulator.state import STORE
from apps.psp_simulator.stripe_api import STRIPE, _error, _no_such
from apps.psp_simulator.web import Request, Response, json_response

# -- Stripe: report runs and files -----------------------------------------------------------------


@STRIPE.route("POST", r"/v1/reporting/report_runs", "retrieve", mutating=True)
def report_run_create(context: Context) -> Response | Execution:
    form = context.request.form()
    report_type = form.get("report_type", "")
    if report_type not in STRIPE_REPORT_TYPES:
        return _error(
            400,
            "invalid_request_error",
            f"Invalid report_type: {report_type!r}",
            param="report_type",
        )
    parameters = form.get("parameters") or {}
    try:
        start = int(parameters.get("interval_start", 0))
        end = int(parameters.get("interval_end", 2**31))
    except (TypeError, ValueError, AttributeError):
        return _error(400, "invalid_request_error", "Invalid interval", param="parameters")
    base = context.request.base_url() + context.request.path[: -len(context.path)]

    def run() -> Response:
        settlement = context.connector.settlement
        report_run = settlement.create_report_run(report_type, start, end)
        return json_response(200, settlement.render_report_run(report_run, base))

    return Execution(run)


@STRIPE.route("GET", r"/v1/reporting/report_runs/(?P<run_id>[^/]+)", "retrieve")
def report_run_retrieve(context: Context, run_id: str) -> Response | Execution:
    base = context.request.base_url() + context.request.path[: -len(context.path)]

    def run() -> Response:
        settlement = context.connector.settlement
        report_run = settlement.report_runs.get(run_id)
        if report_run is None:
            return _no_such("report run", run_id)
        return json_response(200, settlement.render_report_run(report_run, base))

    return Execution(run)


@STRIPE.route("GET", r"/v1/files/(?P<file_id>[^/]+)/contents", "retrieve")
def file_contents(context: Context, file_id: str) -> Response | Execution:
    def run() -> Response:
        body = context.connector.settlement.files.get(file_id)
        if body is None:
            return _no_such("file", file_id)
        return Response(200, body, [("Content-Type", "text/csv")])

    return Execution(run)


# -- Adyen: report download ------------------------------------------------------------------------


@ADYEN.route(
    "GET",
    r"/reports/download/MerchantAccount/(?P<account>[^/]+)/(?P<filename>[^/]+)",
    "retrieve",
)
def report_download(context: Context, account: str, filename: str) -> Response | Execution:
    def run() -> Response:
        settlement = context.connector.settlement
        batch = settlement.batch_by_filename(account, filename)
        if batch is None:
            return _api_error(404, "000", "Report not found", "validation")
        return Response(200, settlement.adyen_report(batch), [("Content-Type", "text/csv")])

    return Execution(run)


# -- control -------------------------------------------------------------------------------------


def _view(name: str) -> dict:
    return {"connector": name, **STORE.connector(name).settlement.view()}


@control.route("GET", f"/connectors/{control.CONNECTOR_NAME}/settlement")
def settlement_read(request: Request, name: str) -> Response:
    with STORE.lock:
        return json_response(200, _view(name))


@control.route("PATCH", f"/connectors/{control.CONNECTOR_NAME}/settlement")
def settlement_update(request: Request, name: str) -> Response:
    body = control._json_object(request)
    if isinstance(body, Response):
        return body
    with STORE.lock:
        settlement = STORE.connector(name).settlement
        try:
            config = SettlementConfig.from_dict(body, base=settlement.config)
        except (InvalidSettlementConfig, TypeError) as exc:
            return control._problem(400, str(exc))
        settlement.configure(config)
        return json_response(200, _view(name))


@control.route("DELETE", f"/connectors/{control.CONNECTOR_NAME}/settlement")
def settlement_reset(request: Request, name: str) -> Response:
    with STORE.lock:
        STORE.connector(name).settlement.configure(SettlementConfig())
        return json_response(200, _view(name))


@control.route("POST", f"/connectors/{control.CONNECTOR_NAME}/settlement/settle")
def settlement_settle(request: Request, name: str) -> Response:
    body = control._json_object(request)
    if isinstance(body, Response):
        return body
    try:
        up_to = date.fromisoformat(str(body.get("up_to", "")))
    except ValueError:
        return control._problem(400, "up_to must be a date, YYYY-MM-DD")
    with STORE.lock:
        state = STORE.connector(name)
        new = state.settlement.settle(state, up_to)
        return json_response(200, {**_view(name), "new_batches": [batch.number for batch in new]})
