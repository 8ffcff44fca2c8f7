"""Market data and the signals read from it: numpy only, no torch.

Candles and books (`candles`), data sources (`synthetic`, `csvfile`, `bybit`), the one feature
pipeline (`features`), the regime detector (`regime`) and the dataset builder (`dataset`).
"""
