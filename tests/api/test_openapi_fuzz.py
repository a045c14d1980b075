"""The OpenAPI document tells the truth: a schemathesis run over every operation, with each of the three
credentials (operator, partner, learner) and none, checks that no request gets a 5xx, that every status and
body the service sends is the one the document declares, that data the schema forbids is refused, and that
data the schema allows is not refused by the service's own validation.

What no schema can say is left to the service: a request may be well formed and still name a state the
service or the chain refuses (a signature that does not verify, an account that is not a party, a profile
that does not fit the served model). Those refusals are 422 with a reason and no ``fields`` list
(:class:`backend.errors.Unprocessable`, ``chain_refused``); a schema-valid request never gets the validation
error (``invalid_request`` with ``fields``) or a 400.

Bounded for CI: a fixed number of generated cases per operation (``FUZZ_EXAMPLES``), derandomised so a
failure reproduces."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from backend.core.config import Settings
from backend.main import create_app

from .conftest import OPERATOR_KEY, Demo, Service, _start

FUZZ_EXAMPLES = int(os.environ.get("KNOWLEDGER_FUZZ_EXAMPLES", "12"))
#: Operations whose body is a file: any bytes are a string of the declared type on the wire, so a body the
#: generator means as "the wrong type" arrives as a (bad) file. It is accepted as a job and fails there with
#: its line and column (tests/api/test_ingest.py); only an empty body is refused at once.
FILE_BODIES = frozenset({"/api/v1/ingest/{table}"})


@pytest.fixture(scope="module")
def fuzz_service(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = _start(demo, tmp_path_factory.mktemp("fuzz"), n_users=5)
    yield svc
    svc.container.close()


@pytest.fixture(scope="module")
def fuzz_app(fuzz_service: Service) -> Any:
    return create_app(container=fuzz_service.container)


#: The document the service serves at /openapi.json (the routes are static: no running service needed).
schema = schemathesis.openapi.from_dict(create_app(Settings(_env_file=None)).openapi())  # type: ignore[call-arg]


def _credentials(svc: Service) -> dict[str, dict[str, str]]:
    learner = svc.new_user()
    return {
        "none": {},
        "operator": {"X-API-Key": OPERATOR_KEY},
        "partner": svc.partner("bank"),
        "learner": learner["headers"],
    }


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_keeps_its_documented_contract(
    case: Any, fuzz_service: Service, fuzz_app: Any
) -> None:
    for name, headers in _credentials(fuzz_service).items():
        response = case.call(headers=headers, app=fuzz_app)
        checks = [
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ]
        if case.operation.path not in FILE_BODIES:
            checks.append(negative_data_rejection)
        case.validate_response(response, checks=checks)
        _schema_valid_is_not_refused_as_invalid(case, response, name)


def _schema_valid_is_not_refused_as_invalid(case: Any, response: Any, credential: str) -> None:
    """schemathesis's ``positive_data_acceptance``, except for refusals that depend on state (see above)."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    if response.status_code == 422:
        error = response.json()["error"]
        if "fields" not in error["details"]:  # refused by the service or the chain, not by the schema
            return
    if response.status_code in (400, 422):
        raise AssertionError(
            f"{case.operation.label} as {credential}: schema-valid data refused with {response.status_code}: "
            f"{response.text}\n{case.as_curl_command()}"
        )


def test_a_method_a_path_does_not_answer_is_405_with_every_method_it_does(fuzz_service: Service) -> None:
    """RFC 9110: a 405 carries ``Allow``; here it lists every method the document gives the path (the
    router alone named only the first route that matched the path)."""
    paths = schema.raw_schema["paths"]
    checked = 0
    for template, operations in paths.items():
        path = re.sub(r"\{[^/]+\}", "1", template)
        declared = {m.upper() for m in operations}
        for method in ("PATCH", "PUT", "DELETE", "POST", "GET"):
            if method in declared:
                continue
            r = fuzz_service.api.request(method, path)
            assert r.status_code == 405, (method, path, r.text)
            assert set(r.headers["allow"].split(", ")) == declared, (method, path, r.headers["allow"])
            assert r.json()["error"]["code"] == "method_not_allowed"
            checked += 1
            break
    assert checked == len(paths)
