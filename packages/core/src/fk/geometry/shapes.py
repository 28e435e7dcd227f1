"""Shape checks with messages that name the argument: ``check_shape(R, "*batch 3 3", name="R")``.

A pattern is space-separated tokens, one per dimension:
- an integer (``3``): that exact size;
- a name (``N``): any size, but the same size everywhere the name appears in one
  call (and in ``dims`` passed between calls);
- ``*name``: any number (zero or more) of leading/inner dimensions; at most one per pattern;
- ``_``: any size, not bound.
"""

from __future__ import annotations

from typing import Any

from fk.errors import ShapeError


def check_shape(x: Any, pattern: str, name: str = "x", dims: dict[str, Any] | None = None) -> dict[str, Any]:
    """Raise :class:`fk.ShapeError` unless ``x.shape`` matches ``pattern``.

    Args:
        x: anything with a ``.shape`` (numpy array, torch tensor).
        pattern: e.g. ``"*batch 3 3"``, ``"*batch N 2"``, ``"B N 3"``.
        name: the argument's name, first word of the message.
        dims: sizes already bound (from checking another argument); updated in place.
    Returns:
        the bound sizes: ``{"N": 68, "batch": (4,)}`` (variadic names bind tuples).

    Example message: ``R: expected (*batch, 3, 3), got (4, 3)``.
    """
    shape = tuple(int(s) for s in getattr(x, "shape", ()))
    tokens = pattern.split()
    bound = dims if dims is not None else {}
    stars = [i for i, t in enumerate(tokens) if t.startswith("*")]
    if len(stars) > 1:
        raise ValueError(f"check_shape pattern {pattern!r}: at most one *name")
    pretty = "(" + ", ".join(tokens) + ")"

    def fail(extra: str = "") -> ShapeError:
        return ShapeError(f"{name}: expected {pretty}, got {shape}{extra}")

    if stars:
        star = stars[0]
        head, tail = tokens[:star], tokens[star + 1 :]
        if len(shape) < len(head) + len(tail):
            raise fail()
        split_end = len(shape) - len(tail)
        pairs = list(zip(head, shape[: len(head)])) + list(zip(tail, shape[split_end:]))
        var_name, var_value = tokens[star][1:], shape[len(head) : split_end]
        if var_name and var_name != "_":
            if var_name in bound and tuple(bound[var_name]) != var_value:
                raise fail(f" ({var_name} was {tuple(bound[var_name])})")
            bound[var_name] = var_value
    else:
        if len(shape) != len(tokens):
            raise fail()
        pairs = list(zip(tokens, shape))
    for token, size in pairs:
        if token == "_":
            continue
        if token.lstrip("-").isdigit():
            if size != int(token):
                raise fail()
        elif token in bound and bound[token] != size:
            raise fail(f" ({token} was {bound[token]})")
        else:
            bound[token] = size
    return bound
