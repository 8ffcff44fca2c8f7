"""Live symbols: the service follows market feeds and answers on every closed bar.

    follower.py   the feeds of one worker, each symbol's task and latest update (`Live`)
    predictor.py  one symbol's bar → data plane → hysteresis → prediction
    hub.py        fan-out to subscribers with bounded queues, and the recent events to resume from
    views.py      the JSON bodies (a symbol's update, the listing, notices)
    sse.py        GET /symbols/{symbol}/events as Server-Sent Events
    protocol.py   WebSocket /ws: subscribe / unsubscribe / ping
    counters.py   Prometheus metrics of feeds, predictions and subscribers
The routes (`app/routes/symbols.py`, `ws.py`) only parse, call these and return; the lifespan
(`app/main.py`) opens, starts and stops one `Live` per worker.
"""
