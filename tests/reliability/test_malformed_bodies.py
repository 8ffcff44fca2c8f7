"""Bodies that cannot be taken: one over the configured limit is refused with 413 before anything parses
it (against the real server on raw sockets, so nothing but uvicorn stands in front of the app), and
malformed JSON gets a 4xx that the OpenAPI document declares for the route.

tests/app/test_errors.py proves the limit on a bare app with the middleware (Content-Length and
chunked); here it is the service itself, with bodies that would also fail to parse, and one that never
ends.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

LIMIT = 64 * 1024
READ_SECONDS = 15.0  # a server that waited for the rest of the body would never answer at all


@pytest.fixture(scope="module")
def server(quick_store: Path, serve: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    log = tmp_path_factory.mktemp("server") / "server.log"
    with serve(quick_store, log, TIERED_MAX_BODY_BYTES=str(LIMIT)) as s:
        yield s


def exchange(port: int, head: str, chunks: list[bytes]) -> tuple[int, dict[str, str], bytes]:
    """Send the request head and the chunks, then read one response: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=READ_SECONDS) as s:
        s.sendall(head.encode("latin-1"))
        for chunk in chunks:
            s.sendall(chunk)
        data = b""
        while b"\r\n\r\n" not in data:
            more = s.recv(65536)
            assert more, f"the server closed the connection without an answer: {data!r}"
            data += more
        top, _, rest = data.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        while len(rest) < int(headers.get("content-length", "0")):
            more = s.recv(65536)
            if not more:
                break
            rest += more
        return int(lines[0].split()[1]), headers, rest


def head(path: str, **headers: str) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items())]
    return "\r\n".join(lines) + "\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/predict", "/predict/batch", "/regime", "/v2/models/M0/infer"])
def test_a_declared_length_over_the_limit_is_refused_without_reading_the_body(server, path):
    # The head promises a gigabyte and no byte of it is sent: only an answer that reads nothing comes back.
    status, headers, body = exchange(server.port, head(path, Content_Length=str(10**9)), [])
    assert status == 413 and headers["connection"] == "close"
    error = json.loads(body)["error"]
    assert str(LIMIT) in (error if path.startswith("/v2") else error["message"])  # the protocol's shape


@pytest.mark.slow
def test_a_chunked_body_without_a_length_is_refused_once_it_passes_the_limit(server):
    # Invalid JSON, in chunks, and never finished (no terminating chunk): the 413 cannot come from a
    # parser, and it comes while the body is still open. Exactly LIMIT + 1 bytes are sent, so the
    # server has read everything when it closes.
    pieces = [b"{" * 4096] * (LIMIT // 4096) + [b"{"]
    status, _, body = exchange(server.port, head("/predict", Transfer_Encoding="chunked"),
                               [chunk(p) for p in pieces])
    assert status == 413 and json.loads(body)["error"]["field"] == "body"


@pytest.mark.slow
def test_a_chunked_body_within_the_limit_is_served(server, batch_body):
    raw = json.dumps(batch_body["items"][0]).encode()
    pieces = [raw[i:i + 1000] for i in range(0, len(raw), 1000)]
    status, _, body = exchange(server.port, head("/predict", Transfer_Encoding="chunked"),
                               [*(chunk(p) for p in pieces), b"0\r\n\r\n"])
    assert status == 200 and "prediction" in json.loads(body)


def test_an_invalid_body_over_the_limit_is_413_from_the_service_not_422(quick_store, client_for):
    with client_for(quick_store, max_body_bytes=4096) as c:
        r = c.post("/predict", content=b"{" * 5000, headers={"content-type": "application/json"})
        within = c.post("/predict", content=b"{" * 4000, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert within.status_code == 422, "the same body within the limit is parsed, and refused as JSON"


MALFORMED = {
    "empty": b"",
    "truncated": b'{"candles": [{"ts": 1, ',
    "trailing_garbage": b'{"candles": []} x',
    "single_quotes": b"{'candles': []}",
    "not_utf8": b'{"symbol": "\xff\xfe"}',
    "lone_surrogate": b'{"symbol": "\\ud800"}',
    "deeply_nested": b'{"candles": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "nan_literal_as_document": b"NaN",
    "a_number": b"1e400",
    "null": b"null",
    "utf16": '{"candles": []}'.encode("utf-16"),
}


def declared(operation: dict[str, Any], status: int) -> bool:
    responses = operation["responses"]
    return str(status) in responses or f"{str(status)[0]}XX" in responses


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_malformed_json_gets_a_4xx_the_openapi_document_declares(quick_store, client_for, kind):
    with client_for(quick_store) as c:
        paths = c.get("/openapi.json").json()["paths"]
        version = c.get("/v2/models/M1").json()["versions"][0]
        routes = {path.replace("{model}", "M1").replace("{version}", version): item["post"]
                  for path, item in paths.items() if "post" in item and "requestBody" in item["post"]}
        answers = {path: c.post(path, content=MALFORMED[kind], headers={"content-type": "application/json"})
                   for path in routes}
    assert set(routes) == {"/predict", "/predict/batch", "/regime", "/v2/models/M1/infer",
                           f"/v2/models/M1/versions/{version}/infer"}
    for path, r in answers.items():
        assert 400 <= r.status_code < 500 and declared(routes[path], r.status_code), (path, r.status_code)
        if not path.startswith("/v2"):  # the protocol's error shape has no field
            assert r.json()["error"]["field"], r.text
