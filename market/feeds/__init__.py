"""Live feeds: a source of closed bars (and the latest book) per symbol, for the service to follow.

`events` holds what a consumer receives and why an input is dropped; `frames` and `book` read Bybit's
public WebSocket frames.
"""
