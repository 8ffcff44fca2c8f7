"""Security: no request can name a file or URL to load, nothing at serve time can unpickle, an error
never shows a stack trace, a path or the admin token, and CORS is off unless origins are configured.

Covered elsewhere, and not repeated: the admin API is off without a token (tests/app/test_admin.py:
403, and 401 for a wrong or missing one), a tier file named with a path or linked out of the store
(tests/app/test_registry.py), CURRENT and family directories pointing out of the store and broken
families' reasons (test_bad_models.py here), the constant-time token compare (test_hot_reload.py), the
container's non-root USER (tests/deploy/test_dockerfile.py:
test_serve_stage_runs_as_a_non_root_user), CORS preflights (tests/app/test_tiers_and_health.py).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from app.registry import Family
from market.features import FEATURE_NAMES

F = len(FEATURE_NAMES)

ROOT = Path(__file__).resolve().parents[2]
SERVING_PACKAGES = ("app", "models", "market")
# Modules that deserialise arbitrary objects (code execution on load), and torch, whose load unpickles.
UNPICKLERS = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal", "torch"}
# numpy's load unpickles object arrays when asked to; yaml's full loaders build arbitrary objects.
UNPICKLING_CALLS = {"np.load", "numpy.load", "yaml.load", "yaml.unsafe_load", "yaml.full_load"}
PATHLIKE_FIELD = re.compile(r"path|file|dir|url|uri|location|model_?name", re.IGNORECASE)


def python_files() -> list[Path]:
    return sorted(p for package in SERVING_PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_the_serving_packages_can_be_scanned():
    names = {p.relative_to(ROOT).as_posix() for p in python_files()}
    assert {"app/registry.py", "models/store.py", "market/features.py"} <= names


@pytest.mark.parametrize("path", python_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_nothing_the_service_imports_can_unpickle(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        else:
            modules = []
        for module in modules:
            assert module.split(".")[0] not in UNPICKLERS, f"{path}:{node.lineno} imports {module}"
        if isinstance(node, ast.Call):
            called = ast.unparse(node.func)
            assert called not in UNPICKLING_CALLS and not called.endswith("read_pickle"), \
                f"{path}:{node.lineno} calls {called}"


def test_no_request_field_can_name_a_file_or_url(client_for, quick_store):
    with client_for(quick_store) as c:
        spec = c.get("/openapi.json").json()
    reload = spec["paths"]["/admin/reload"]["post"]
    assert "requestBody" not in reload and not reload.get("parameters"), "reload loads CURRENT, nothing else"
    request_schemas = {"PredictRequest", "BatchRequest", "Candle", "OrderBook", "InferenceRequest",
                       "RequestInput", "RequestOutput"}
    assert request_schemas <= set(spec["components"]["schemas"])
    for name in request_schemas:
        fields = spec["components"]["schemas"][name].get("properties", {})
        assert not [f for f in fields if PATHLIKE_FIELD.search(f)], (name, list(fields))


@pytest.mark.parametrize("url", ["/tiers/..%2Fmanifest.json", "/tiers/%2Fetc%2Fpasswd",
                                 "/v2/models/..%2F..%2FCURRENT", "/v2/models/M0.onnx/ready",
                                 "/v2/models/https:%2F%2Fexample.com%2Fm.onnx"])
def test_a_tier_named_like_a_path_or_url_is_unknown(client_for, quick_store, sound, url):
    with client_for(quick_store) as c:
        r = c.get(url)
    assert r.status_code == 404, r.text
    sound(r.text)


def test_a_crash_inside_the_runtime_answers_500_without_trace_path_or_token(
        client_for, quick_store, batch_body, admin_token, sound, monkeypatch):
    def crash(self: Family, tier: str, x: Any) -> Any:
        raise RuntimeError(f"onnxruntime failed reading {quick_store}/M0.onnx with token {admin_token}")

    with client_for(quick_store, raise_server_exceptions=False) as c:
        monkeypatch.setattr(Family, "run", crash)
        answers = [c.post("/predict", json=batch_body["items"][0]),
                   c.post("/predict/batch", json=batch_body),
                   c.post("/v2/models/M2/infer", json={"inputs": [
                       {"name": "features", "shape": [1, F], "datatype": "FP32", "data": [0.0] * F}]})]
    for r in answers:
        assert r.status_code == 500, r.text
        sound(r.text)
        assert "RuntimeError" not in r.text and admin_token not in r.text
    assert answers[0].json()["error"]["code"] == "internal" and set(answers[2].json()) == {"error"}


def test_the_admin_token_is_never_shown(client_for, quick_store, admin_token):
    with client_for(quick_store) as c:
        texts = [c.get(p).text for p in ("/openapi.json", "/tiers", "/readyz", "/metrics")]
        texts.append(c.post("/admin/reload", headers={"Authorization": "Bearer x" * 3}).text)
    assert not [t for t in texts if admin_token in t]


def test_cors_headers_appear_only_for_a_configured_origin(client_for, quick_store, batch_body):
    origin = {"Origin": "https://ui.example"}
    with client_for(quick_store) as c:
        default = [c.get("/tiers", headers=origin),
                   c.post("/predict", json=batch_body["items"][0], headers=origin)]
    with client_for(quick_store, cors_origins=["https://ui.example"], max_body_bytes=4096) as c:
        allowed = [c.get("/tiers", headers=origin), c.post("/predict", json={}, headers=origin),
                   c.post("/predict", content=b"{" * 5000,
                          headers={**origin, "content-type": "application/json"})]
        other = c.get("/tiers", headers={"Origin": "https://evil.example"})
    assert [r.status_code for r in default] == [200, 200]
    assert not [r for r in default if "access-control-allow-origin" in r.headers]
    # Configured: answers, errors and 413 refusals alike, so a browser client can read why it failed.
    assert [r.status_code for r in allowed] == [200, 422, 413]
    assert all(r.headers.get("access-control-allow-origin") == "https://ui.example" for r in allowed)
    assert "access-control-allow-origin" not in other.headers
