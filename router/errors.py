"""Errors raised by the routing layer."""


class RouterError(Exception):
    """Base class for routing errors."""


class ConfigError(RouterError):
    """The cascade configuration is invalid; the message names the field and the fix."""


class ProbeError(RouterError):
    """A P(IK) probe file cannot be loaded or does not match the tier it is used with."""


class InvalidQuestion(RouterError):
    """A question cannot be asked: empty text, missing or malformed choices."""


class TargetUnreachable(RouterError, ValueError):
    """No threshold setting meets the accuracy target on the data given."""
