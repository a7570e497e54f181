"""Schemathesis over both OpenAPI documents: the backend's (anonymous, then signed in) and a proxy
node's. Every answer must be no server error and conform to the document: a documented status,
content type and body schema (issue 13).

Each operation gets ``EXAMPLES`` positive and as many negative cases, derandomized so a run is
reproducible, sent through Litestar's test client to the app the ``app`` fixture builds (on
PostgreSQL too when ``TWIN_TEST_DATABASE_URL`` is set). Failures are collected over every
operation and reported together; ``-s`` prints the statuses each operation answered.

Excluded, and why:

- ``POST /rpc``: a JSON-RPC 2.0 passthrough to the chain. It answers 200 with JSON-RPC's own result
  or error objects for whatever arrives; tests/chain cover it.
- ``POST /api/auth/logout`` when signed in: it would sign the rest of the run out (it runs anonymously).
- The websockets (``/ws/...``) are not in the OpenAPI documents; tests/chat and tests/autoscale cover them.
- Paid chat completions: without an x402 payment the node answers 400 or 402 (tests/proxy pay).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, Phase
from litestar import Litestar
from litestar.testing import TestClient
from schemathesis import GenerationMode
from schemathesis import checks as st_checks
from schemathesis.core.failures import FailureGroup

from app.chain.client import Chain
from app.proxy.config import load_proxy_settings
from app.proxy.node.app import create_proxy_app
from tests.helpers import sign, siwe_message

EXAMPLES = 25
CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_schema_conformance,
]
EXCLUDED = {"POST /rpc": "a JSON-RPC 2.0 passthrough, answering in JSON-RPC's own shape (tests/chain)"}
# Signed in, logging out would sign the rest of the run out (it is run anonymously).
EXCLUDED_SIGNED_IN = EXCLUDED | {"POST /api/auth/logout": "it ends the session the run uses"}


@pytest.fixture(autouse=True)
def _quiet_httpx() -> Iterator[None]:
    """No log line per request (thousands of them)."""
    logger = logging.getLogger("httpx")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


def _send(client: TestClient[Litestar], case: Any) -> Any:
    """The case through the test client: schemathesis's requests-style arguments, as httpx takes them."""
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url))
    data = kwargs.pop("data", None)
    if isinstance(data, bytes | str):
        kwargs["content"] = data
    elif data is not None:
        kwargs["data"] = data
    for unused in ("auth", "timeout", "verify", "allow_redirects"):
        kwargs.pop(unused, None)
    cookies = kwargs.pop("cookies", None) or {}
    headers = dict(kwargs.pop("headers", None) or {})
    if cookies:
        jar = "; ".join(f"{name}={value}" for name, value in {**dict(client.cookies), **cookies}.items())
        headers["Cookie"] = jar
    return client.request(headers=headers, **kwargs)


def run_schemathesis(
    client: TestClient[Litestar], document: dict[str, Any], *, excluded: dict[str, str] = EXCLUDED
) -> tuple[Counter[str], list[str]]:
    """Every operation of ``document`` but ``excluded`` against ``client``: the statuses answered and the failures."""
    schema = schemathesis.openapi.from_dict(document)
    cases: Counter[str] = Counter()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        if label in excluded:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _run_operation(client, operation, label, mode, cases)
            except hypothesis.errors.Unsatisfiable:
                continue  # nothing to negate (no parameters, no body)
            except (Exception, FailureGroup) as failure:  # noqa: BLE001 - collected, reported with the others
                failures.append(f"{label} ({mode.value}): {failure}")
    return cases, failures


def _run_operation(
    client: TestClient[Litestar], operation: Any, label: str, mode: GenerationMode, cases: Counter[str]
) -> None:
    """``EXAMPLES`` cases of one operation in one mode; raises what the checks found (shrunk)."""

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        response = _send(client, case)
        cases[f"{label} {response.status_code}"] += 1
        case.validate_response(response, checks=CHECKS)

    check()


def _sign_in(client: TestClient[Litestar], account: LocalAccount) -> None:
    nonce = client.get("/api/auth/nonce").json()
    message = siwe_message(account, nonce=nonce["nonce"], chain_id=nonce["chain_id"], domain=nonce["domain"])
    response = client.post("/api/auth/verify", json={"message": message, "signature": sign(account, message)})
    assert response.status_code == 201, response.text


@pytest.fixture
def backend(app: Litestar) -> Iterator[TestClient[Litestar]]:
    with TestClient(app=app) as client:
        yield client


@pytest.fixture
def node(chain: Chain) -> Iterator[TestClient[Litestar]]:
    app = create_proxy_app(load_proxy_settings(), chain, endpoint="http://schemathesis.in-process.invalid")
    with TestClient(app=app) as client:
        yield client


def _report(what: str, cases: Counter[str], started: float, failures: list[str]) -> None:
    print(f"{what}: {cases.total()} cases in {time.monotonic() - started:.1f}s, {len(failures)} failing operations")
    print("\n".join(f"  {answer}: {count}" for answer, count in sorted(cases.items())))
    assert not failures, "\n\n".join(failures)


def test_backend_anonymous_conforms(backend: TestClient[Litestar]) -> None:
    started = time.monotonic()
    cases, failures = run_schemathesis(backend, backend.app.openapi_schema.to_schema())
    _report("backend, anonymous", cases, started, failures)


def test_backend_signed_in_conforms(backend: TestClient[Litestar], chain: Chain) -> None:
    _sign_in(backend, chain.dev_accounts[2])
    started = time.monotonic()
    cases, failures = run_schemathesis(backend, backend.app.openapi_schema.to_schema(), excluded=EXCLUDED_SIGNED_IN)
    assert backend.get("/api/auth/me").status_code == 200, "the run signed itself out"
    _report("backend, signed in", cases, started, failures)


def test_no_route_documents_litestars_own_error_shape(
    backend: TestClient[Litestar], node: TestClient[Litestar]
) -> None:
    """Litestar documents 400 as ``{status_code, detail, extra}`` unless a route says otherwise;
    neither app ever answers that shape."""
    for client in (backend, node):
        document = client.app.openapi_schema.to_schema()
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                for status, response in operation["responses"].items():
                    schema = str(response.get("content", {}))
                    assert "status_code" not in schema, (method, path, status)


def test_node_conforms(node: TestClient[Litestar]) -> None:
    started = time.monotonic()
    cases, failures = run_schemathesis(node, node.app.openapi_schema.to_schema())
    _report("node", cases, started, failures)
