"""schemathesis against the app's own OpenAPI document: for every operation, requests generated from
its schema, valid and invalid, are each answered without a 500, in a status and shape the document
declares, with only finite numbers in the body.

schemathesis's pytest loaders do not fit here: `from_fixture` breaks on this pytest (9.x: it reads
`request.node._nodeid`), and a module-level `from_asgi` would start the app's lifespan at import,
before the quick family exists. So the schema is loaded in a fixture and each operation's strategy is
driven by hypothesis directly; schemathesis still sends the requests (through the app, lifespan
included) and runs its checks on the answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.main import create_app
from app.settings import Settings

EXAMPLES = 15  # per operation and mode (19 of them); ~20 s of CPU in all
# A batch holds items of at least 48 candles each: generating one costs what a dozen other requests do.
FEWER_EXAMPLES = {"/predict/batch": 6}
# These bodies must also satisfy rules JSON Schema cannot state (timestamps strictly increasing,
# high ≥ max(open, close) ≥ min(open, close) ≥ low, best bid below best ask), so a schema-valid
# request is rightly refused with 422 here and positive_data_acceptance does not apply.
RELATIONAL_RULES = {"/predict", "/predict/batch", "/regime"}
TOKEN = "schemathesis-token-never-sent-0123"
# A body over the size limit is refused with 413 before it is parsed, however invalid it is: a rightful
# rejection that schemathesis's default list for negative_data_rejection leaves out.
CONFIG = schemathesis.Config.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": [
    "400", "401", "403", "404", "405", "406", "409", "413", "415", "422"]}}})


def _settings(store: Path) -> Settings:
    return Settings(models_dir=store, admin_token=TOKEN, bench_routes=False, cors_origins=[])


# The document needs no family (nothing is loaded until the lifespan runs), so the operations are
# known at collection time. Invalid requests are generated for the operations that take a body: the
# others have nothing to get wrong (no parameters, or a free-form tier name in the path).
DOCUMENT = create_app(_settings(Path("unused"))).openapi()
MODES = {True: [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], False: [GenerationMode.POSITIVE]}
CASES = [(path, method.upper(), mode) for path, item in DOCUMENT["paths"].items()
         for method, operation in item.items() for mode in MODES["requestBody" in operation]]


@pytest.fixture(scope="module")
def api_schema(quick_store: Path) -> Any:
    app = create_app(_settings(quick_store))
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)


@pytest.mark.parametrize(("path", "method", "mode"), CASES, ids=[f"{m} {p} {g}" for p, m, g in CASES])
def test_generated_requests_are_answered_as_the_schema_declares(api_schema, sound, path, method, mode):
    operation = api_schema[path][method]
    excluded = [positive_data_acceptance] if path in RELATIONAL_RULES else []

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=FEWER_EXAMPLES.get(path, EXAMPLES), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        response = case.call_and_validate(excluded_checks=excluded)
        assert response.status_code < 500 or response.status_code == 503, response.text
        if response.headers.get("content-type", [""])[0].startswith("application/json"):
            sound(response.text)
    check()
