"""The decision log: one CloudEvent per answer, written by a background thread that never holds a request
back, rotated by size, and audited by `tiered replay-log`, which flags a tampered line."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.formats.json import JSONFormat
from prometheus_client.parser import text_string_to_metric_families

from app.decisions import DECISION
from cli import main
from tests.app.conftest import ClientFor, MakeBody


def bodies(make_body: MakeBody, regime_ends: dict[str, int]) -> list[tuple[str, dict[str, Any]]]:
    ends = list(regime_ends.values())
    out: list[tuple[str, dict[str, Any]]] = [("/predict", make_body(end=e)) for e in ends]
    out += [("/predict", make_body(end=ends[0], tier="M0")), ("/predict", make_body(end=ends[0], book=False)),
            ("/predict", make_body(end=ends[-1], max_latency_ms=1e-6)),
            ("/predict/batch", {"items": [make_body(end=e) for e in ends]})]
    return out


def replay_log(capsys: pytest.CaptureFixture[str], store: Path, *files: Path) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["replay-log", *map(str, files), "--models", str(store)])
    return int(exit_info.value.code or 0), capsys.readouterr().out


def lines_written(text: str) -> dict[str, float]:
    return {s.labels["outcome"]: s.value for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == "tiered_decision_log_lines_total"}


@pytest.fixture(scope="module")
def clean_log(quick_store: Path, client_for: ClientFor, make_body: MakeBody, regime_ends: dict[str, int],
              tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A log of every kind of route, with every answer shadowed; and how many answers it should hold."""
    path = tmp_path_factory.mktemp("log") / "decisions.jsonl"
    answers = 0
    with client_for(quick_store, decision_log=path, shadow_rate=1.0) as client:
        for route, body in bodies(make_body, regime_ends):
            response = client.post(route, json=body)
            assert response.status_code == 200, response.text
            answers += len(response.json().get("results", [None]))
    return path, answers


def test_every_answer_is_one_cloudevent_line_with_what_recomputes_it(clean_log: tuple[Path, int],
                                                                     quick_store: Path):
    path, answers = clean_log
    lines = path.read_bytes().splitlines()
    assert len(lines) == answers
    fmt = JSONFormat()
    for raw in lines:
        event = fmt.read(None, raw)  # the CloudEvents SDK's own reading of the JSON format
        assert event.get_attributes()["type"] == DECISION and event.get_attributes()["specversion"] == "1.0"
        data = event.get_data()
        assert isinstance(data, dict)
        assert set(data) >= {"window_sha256", "signals", "regime", "tier", "reason", "family_id",
                             "tier_sha256", "features", "output", "prediction", "latency_us", "shadow"}
    ids = [json.loads(raw)["id"] for raw in lines]
    assert len(set(ids)) == len(ids)
    reasons = {json.loads(raw)["data"]["reason"] for raw in lines}
    assert {"regime", "override", "budget"} <= reasons


def test_replay_log_finds_no_mismatch_on_a_clean_log(clean_log: tuple[Path, int], quick_store: Path,
                                                     capsys: pytest.CaptureFixture[str]):
    path, answers = clean_log
    code, out = replay_log(capsys, quick_store, path)
    assert code == 0, out
    assert f"{answers} decisions" in out and "no mismatch" in out


@pytest.mark.parametrize(("field", "tamper"), [
    ("output", lambda d: d["output"].__setitem__(0, d["output"][0] + 1e-3)),
    ("prediction", lambda d: d.__setitem__("prediction", 0.5)),
    ("regime", lambda d: d.__setitem__("regime", "crisis" if d["regime"] != "crisis" else "calm")),
    ("tier", lambda d: d.__setitem__("tier", "M3" if d["tier"] != "M3" else "M2")),
    ("signals", lambda d: d["signals"].__setitem__("volatility", d["signals"]["volatility"] * 2)),
    ("tier_sha256", lambda d: d.__setitem__("tier_sha256", "0" * 64)),
    ("family_id", lambda d: d.__setitem__("family_id", "no-such-family")),
])
def test_replay_log_flags_a_tampered_line(clean_log: tuple[Path, int], quick_store: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str], field: str, tamper: Any):
    lines = clean_log[0].read_bytes().splitlines()
    event = json.loads(lines[0])
    assert event["data"]["reason"] == "regime" and event["data"]["regime_from"] == "detector"
    tamper(event["data"])
    lines[0] = json.dumps(event).encode()
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_bytes(b"\n".join(lines) + b"\n")
    code, out = replay_log(capsys, quick_store, tampered)
    assert code == 1, out
    flagged = [line for line in out.splitlines() if line.startswith("MISMATCH")]
    assert flagged and all(f"{tampered}:1:" in line for line in flagged), out
    assert any(f": {field}: logged" in line for line in flagged), out


def test_replay_log_flags_a_line_that_is_not_a_decision(clean_log: tuple[Path, int], quick_store: Path,
                                                        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(clean_log[0].read_bytes() + b'{"not": "an event"}\n')
    code, out = replay_log(capsys, quick_store, broken)
    assert code == 1 and f"{broken}:{clean_log[1] + 1}: ?: line" in out, out


def test_the_log_rotates_by_size_and_the_rotated_files_audit_whole(
        quick_store: Path, client_for: ClientFor, make_body: MakeBody, regime_ends: dict[str, int],
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "decisions.jsonl"
    n = 40
    with client_for(quick_store, decision_log=path, decision_log_max_bytes=4096, decision_log_backups=2,
                    shadow_rate=0.0) as client:
        for _ in range(n):
            assert client.post("/predict", json=make_body(end=regime_ends["calm"])).status_code == 200
    files = sorted(tmp_path.glob("decisions.jsonl*"))
    assert [f.name for f in files] == ["decisions.jsonl", "decisions.jsonl.1", "decisions.jsonl.2"]
    for f in files[1:]:
        size = f.stat().st_size
        line = len(f.read_bytes().splitlines()[0]) + 1
        assert 4096 <= size < 4096 + line, "a file rotates at the first whole line past the size"
    kept = sum(len(f.read_bytes().splitlines()) for f in files)
    assert 0 < kept < n, "the oldest file was deleted"
    code, out = replay_log(capsys, quick_store, *files)
    assert code == 0 and f"{kept} decisions" in out, out


def test_a_stalled_writer_drops_and_counts_lines_and_never_holds_a_request_back(
        quick_store: Path, client_for: ClientFor, make_body: MakeBody, regime_ends: dict[str, int],
        tmp_path: Path):
    fifo = tmp_path / "decisions.fifo"
    os.mkfifo(fifo)  # the writer blocks opening it until a reader comes: a disk that does not answer
    queue, n = 8, 60
    received: list[bytes] = []
    with client_for(quick_store, decision_log=fifo, decision_log_queue=queue, shadow_rate=0.0) as client:
        slowest = 0.0
        for _ in range(n):
            start = time.perf_counter()
            assert client.post("/predict", json=make_body(end=regime_ends["calm"])).status_code == 200
            slowest = max(slowest, time.perf_counter() - start)
        deadline = time.monotonic() + 5
        while (counts := lines_written(client.get("/metrics").text)).get("dropped", 0) < n - queue - 1:
            assert time.monotonic() < deadline, f"the drops were not counted: {counts}"
            time.sleep(0.02)
        assert counts.get("written", 0) == 0, "nothing could be written yet"
        assert slowest < 1.0, f"a request took {slowest:.3f} s while the writer was stalled"

        def read() -> None:
            with open(fifo, "rb") as f:  # the disk comes back: the writer drains its queue
                received.extend(f.read().splitlines())

        reader = threading.Thread(target=read)
        reader.start()
    reader.join(10)
    assert not reader.is_alive()
    dropped = int(counts["dropped"])
    assert len(received) == n - dropped, "every line not dropped was written once the disk answered"
    assert all(json.loads(raw)["type"] == DECISION for raw in received)
