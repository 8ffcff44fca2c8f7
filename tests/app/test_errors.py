"""One status per domain error and one error shape (the protocol's own under /v2); bodies over the
limit get 413 before anything parses them; a crash reveals nothing."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app import errors
from app.errors import ServiceError
from app.limits import BodyLimit
from app.settings import Settings

MAPPING = [
    (errors.BadRequest, 400, "bad_request"),
    (errors.Unauthorized, 401, "unauthorized"),
    (errors.AdminDisabled, 403, "admin_disabled"),
    (errors.UnknownTier, 404, "unknown_tier"),
    (errors.UnknownModel, 404, "unknown_model"),
    (errors.UnknownSymbol, 404, "unknown_symbol"),
    (errors.FamilyRefused, 409, "family_refused"),
    (errors.PayloadTooLarge, 413, "payload_too_large"),
    (errors.InvalidInput, 422, "invalid_input"),
    (errors.OutOfRange, 422, "out_of_training_range"),
    (errors.TierUnavailable, 503, "tier_unavailable"),
    (errors.NoTierAvailable, 503, "no_tier_available"),
]


def app_raising(error: Exception) -> FastAPI:
    app = FastAPI()
    errors.install(app)

    async def fail() -> None:
        raise error
    app.add_api_route("/boom", fail)
    app.add_api_route("/v2/boom", fail)
    return app


def test_every_domain_error_is_mapped():
    assert {cls for cls, _, _ in MAPPING} == set(ServiceError.__subclasses__())


@pytest.mark.parametrize(("cls", "status", "code"), MAPPING, ids=[m[2] for m in MAPPING])
def test_each_domain_error_has_its_status_and_the_one_error_shape(cls, status, code):
    with TestClient(app_raising(cls("what went wrong; how to fix it", "some.field"))) as c:
        r = c.get("/boom")
        oip = c.get("/v2/boom")
    assert r.status_code == status
    message = "what went wrong; how to fix it"
    assert r.json() == {"error": {"code": code, "message": message, "field": "some.field"}}
    # The Open Inference Protocol answers every bad request 400, a rule that breaks a window included.
    assert oip.status_code == errors.oip_status(cls("")) == (400 if status == 422 else status)
    assert oip.json() == {"error": "what went wrong; how to fix it"}


def test_an_unexpected_error_is_a_500_that_reveals_no_path_or_trace():
    with TestClient(app_raising(RuntimeError("/secret/path/model.onnx exploded")),
                    raise_server_exceptions=False) as c:
        r = c.get("/boom")
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal"
    assert "/secret" not in r.text and "Traceback" not in r.text and "RuntimeError" not in r.text


def test_unknown_routes_and_methods_answer_in_the_error_shape(client):
    missing = client.get("/nowhere")
    wrong_method = client.get("/predict")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "method_not_allowed"
    assert client.get("/v2/nowhere").json() == {"error": "Not Found"}


def small_limit_client(limit: int) -> TestClient:
    app = FastAPI()

    async def echo(body: dict[str, str]) -> dict[str, int]:
        return {"keys": len(body)}
    app.add_api_route("/echo", echo, methods=["POST"])
    app.add_api_route("/v2/echo", echo, methods=["POST"])
    fields = Settings.model_fields
    app.add_middleware(BodyLimit, max_bytes=limit, gap_seconds=fields["body_gap_seconds"].default,
                       total_seconds=fields["body_timeout_seconds"].default)
    return TestClient(app)


def test_a_body_over_the_limit_is_413_from_its_content_length_before_parsing():
    with small_limit_client(1024) as c:
        r = c.post("/echo", content=b"{" * 2000, headers={"content-type": "application/json"})
        oip = c.post("/v2/echo", content=b"{" * 2000, headers={"content-type": "application/json"})
    assert r.status_code == 413, "413, not the 422 that parsing the malformed JSON would give"
    assert r.json()["error"]["code"] == "payload_too_large" and "1024" in r.json()["error"]["message"]
    assert oip.status_code == 413 and set(oip.json()) == {"error"}


def test_a_chunked_body_over_the_limit_is_413_while_it_streams():
    def chunks():
        for _ in range(100):
            yield b" " * 100

    with small_limit_client(1024) as c:
        r = c.post("/echo", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_a_body_within_the_limit_reaches_the_app():
    with small_limit_client(1024) as c:
        r = c.post("/echo", content=json.dumps({"a": "b"}), headers={"content-type": "application/json"})
        chunked = c.post("/echo", content=iter([b'{"a": ', b'"b", "c": "d"}']),
                         headers={"content-type": "application/json"})
    assert r.json() == {"keys": 1} and chunked.json() == {"keys": 2}


def test_a_content_length_that_is_not_a_number_is_400():
    with small_limit_client(1024) as c:
        headers = {"content-type": "application/json", "content-length": "x"}
        r = c.post("/echo", content=b"{}", headers=headers)
    assert r.status_code == 400


def test_predict_bodies_over_the_configured_limit_are_413(quick_store, client_for, make_body):
    with client_for(quick_store, max_body_bytes=4096) as c:
        r = c.post("/predict", json=make_body(n=200))
    assert r.status_code == 413 and r.json()["error"]["field"] == "body"
