"""Errors raised by the market package, in one place.

MarketError
 ├── CandleFileError   a candle CSV that cannot be read (names file, line and problem)
 ├── CandleError       candles that break an invariant (names the field and the row)
 ├── BookError         an order book that breaks an invariant
 └── ExchangeError     an exchange answered with an error (carries code and message)
"""


class MarketError(Exception):
    """Base class of every error the market package raises."""


class CandleFileError(MarketError):
    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path, self.line, self.problem = path, line, problem
        where = f"{path}, line {line}" if line is not None else path
        super().__init__(f"{where}: {problem}")


class CandleError(MarketError):
    def __init__(self, field: str, problem: str, row: int | None = None) -> None:
        self.field, self.problem, self.row = field, problem, row  # row: where it breaks, when one does
        super().__init__(f"{field}: {problem}")


class BookError(MarketError):
    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")


class ExchangeError(MarketError):
    def __init__(self, code: int, message: str, *, endpoint: str = "") -> None:
        self.code, self.message, self.endpoint = code, message, endpoint
        super().__init__(f"{endpoint or 'exchange'} answered retCode {code}: {message}")
