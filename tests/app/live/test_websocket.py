"""WebSocket /ws against the real server following two symbols on the tests' exchange: one connection
subscribes to several symbols, every message is acknowledged or answered with an error naming the field,
unsubscribing stops a symbol's events, and a subscription resumes after an event id."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.app.live.conftest import run, symbol_state
from tests.app.live.test_following import HISTORY, following

pytestmark = pytest.mark.slow  # every test here starts the real server and an exchange


async def receive(ws: ClientConnection, wanted: int, seconds: float = 10.0) -> list[dict[str, Any]]:
    """The next `wanted` messages."""
    async with asyncio.timeout(seconds):
        return [json.loads(await ws.recv()) for _ in range(wanted)]


def ws_url(client: Any) -> str:
    return str(client.base_url).replace("http://", "ws://") + "/ws"


def test_one_connection_follows_several_symbols_and_each_request_is_answered(quick_store):
    async def scenario():
        async with following(quick_store) as (exchange, client), connect(ws_url(client)) as ws:
            btc = exchange.series["BTCUSDT"]
            await ws.send(json.dumps({"op": "subscribe", "symbols": ["BTCUSDT", "ETHUSDT"], "req_id": "a"}))
            [ack] = await receive(ws, 1)
            await symbol_state(client, "ETHUSDT", lambda x: x["subscribers"] == 1)
            await exchange.publish("BTCUSDT", 2)
            await exchange.publish("ETHUSDT", 2)
            both = await receive(ws, 4)
            await ws.send(json.dumps({"op": "unsubscribe", "symbols": ["ETHUSDT"], "req_id": "b"}))
            [unsubscribed] = await receive(ws, 1)
            await exchange.publish("ETHUSDT", 1)
            await exchange.publish("BTCUSDT", 1)
            [after] = await receive(ws, 1)
            await ws.send(json.dumps({"op": "ping", "req_id": "c"}))
            [pong] = await receive(ws, 1)
            return btc, ack, both, unsubscribed, after, pong

    btc, ack, both, unsubscribed, after, pong = run(scenario())
    assert ack == {"type": "ack", "op": "subscribe", "req_id": "a", "symbols": ["BTCUSDT", "ETHUSDT"],
                   "subscribed": ["BTCUSDT", "ETHUSDT"]}
    assert sorted((m["symbol"], m["id"]) for m in both) == sorted(
        [(s, int(btc.ts[HISTORY + k])) for s in ("BTCUSDT", "ETHUSDT") for k in (0, 1)])
    for m in both:
        assert m["type"] == "bar" and m["data"]["symbol"] == m["symbol"] and m["data"]["bar"]["ts"] == m["id"]
        assert isinstance(m["data"]["prediction"], float)
    assert unsubscribed["subscribed"] == ["BTCUSDT"] and unsubscribed["req_id"] == "b"
    assert after["symbol"] == "BTCUSDT", "no event for the symbol left"
    assert pong == {"type": "pong", "req_id": "c"}


def test_bad_messages_are_answered_with_an_error_naming_the_field_and_change_nothing(quick_store):
    bad = [
        ("{not json", None, "message"),
        (json.dumps({"op": "dance"}), None, "op"),
        (json.dumps({"op": "subscribe", "symbols": ["BTCUSDT", 5], "req_id": "1"}), None, "symbols[1]"),
        (json.dumps({"op": "subscribe", "symbols": ["DOGEUSDT"], "req_id": "2"}), "2", "symbols[0]"),
        (json.dumps({"op": "subscribe", "symbols": [], "req_id": "3"}), "3", "symbols"),
        (json.dumps({"op": "subscribe", "symbols": ["BTCUSDT"], "last_event_id": {"ETHUSDT": 1}}), None,
         "last_event_id.ETHUSDT"),
        (json.dumps({"op": "subscribe", "symbols": ["BTCUSDT"], "last_event_id": {"BTCUSDT": "x"}}), None,
         "last_event_id.BTCUSDT"),
        (json.dumps({"op": "subscribe", "symbols": ["BTCUSDT"], "colour": "red"}), None, "colour"),
    ]

    async def scenario():
        async with following(quick_store) as (_, client), connect(ws_url(client)) as ws:
            answers = []
            for text, _, _ in bad:
                await ws.send(text)
                answers.extend(await receive(ws, 1))
            await ws.send(b"\x00binary")
            [binary] = await receive(ws, 1)
            summary = await symbol_state(client, "BTCUSDT", lambda x: True)
            return answers, binary, summary

    answers, binary, summary = run(scenario())
    for (text, req_id, field), answer in zip(bad, answers, strict=True):
        assert answer["type"] == "error" and answer["req_id"] == req_id, (text, answer)
        assert answer["error"]["field"] == field, (text, answer)
        assert answer["error"]["code"] == "invalid_input" and field in answer["error"]["message"]
    assert binary["error"]["field"] == "message" and "text" in binary["error"]["message"]
    assert summary["subscribers"] == 0, "no bad message subscribed anything"


def test_a_subscription_resumes_after_the_last_event_id_it_saw(quick_store):
    async def scenario():
        async with following(quick_store) as (exchange, client):
            btc = exchange.series["BTCUSDT"]
            await exchange.publish("BTCUSDT", 4)
            await symbol_state(client, "BTCUSDT", lambda x: x["last_bar_ts"] == int(btc.ts[HISTORY + 3]))
            async with connect(ws_url(client)) as ws:
                seen = int(btc.ts[HISTORY + 1])
                await ws.send(json.dumps({"op": "subscribe", "symbols": ["BTCUSDT"],
                                          "last_event_id": {"BTCUSDT": seen}}))
                return btc, await receive(ws, 3)

    btc, (ack, *bars) = run(scenario())
    assert ack["type"] == "ack"
    assert [m["id"] for m in bars] == btc.ts[HISTORY + 2:HISTORY + 4].tolist()
