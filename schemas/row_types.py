"""Reading ``NamedTuple`` row annotations (no Beam import: DDL tools use it too)."""

import typing

__all__ = ["unwrap_optional"]


def unwrap_optional(tp) -> tuple[type, bool]:
    """``Optional[X]`` → ``(X, True)``; any other annotation → ``(it, False)``."""
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False
