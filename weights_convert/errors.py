"""Exceptions of the weights converter. Both are ValueErrors, so callers can catch either."""


class WeightsFormatError(ValueError):
    """A weights file is not what it claims to be: wrong format, truncated, corrupt, missing tensors, bad shapes.

    The message is one line and names the file and the problem.
    """


class UnsafePickleError(WeightsFormatError):
    """A pickle referenced a global outside the allow-list of its format; the message names it as module.name."""


def one_line(text, limit: int = 300) -> str:
    """Collapse whitespace so that an error message stays on one line, and cap its length."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
