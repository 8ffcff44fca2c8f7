"""Errors raised by the training package, in one place.

TrainingError
 ├── ConfigError   a config file or override that is not valid (names the key and the fix)
 └── ParityError   an exported graph disagrees with PyTorch beyond the tolerance (the job fails)
"""


class TrainingError(Exception):
    """Base class of every error the training package raises."""


class ConfigError(TrainingError):
    """A training config that cannot be used; the message names the key and what it accepts."""


class ParityError(TrainingError):
    def __init__(self, name: str, max_abs_diff: float, tolerance: float) -> None:
        self.name, self.max_abs_diff, self.tolerance = name, max_abs_diff, tolerance
        super().__init__(f"{name}: onnxruntime and PyTorch differ by up to {max_abs_diff:.3g} "
                         f"(tolerance {tolerance:.3g}); the exported graph is not the trained model")
