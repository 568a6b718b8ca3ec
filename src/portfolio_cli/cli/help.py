"""Typer's help renderer without two rich modules it imports but this app never uses.

``typer.rich_utils`` imports ``rich.markdown`` (for ``rich_markup_mode="markdown"``; this app uses
``"rich"``) and ``rich.traceback`` (for pretty tracebacks, which ``ExitCodes`` never lets through);
with markdown-it and pygments behind them they are about a third of ``portfolio --help``'s time.
``load_help_renderer`` imports it with stand-ins for their two names that import the real module
the first time they are used, so a help screen that never uses them never pays for them.
"""

from __future__ import annotations

import sys
from importlib import import_module
from types import ModuleType
from typing import Any

DEFERRED = {"rich.markdown": "Markdown", "rich.traceback": "Traceback"}


class _Deferring(type):
    """The type of a stand-in: a class attribute (``Traceback.from_exception``) comes from the real class."""

    def __getattr__(cls, attribute: str) -> Any:
        return getattr(cls.real(), attribute)


def _stand_in(module: str, name: str) -> type:
    """A class standing for ``module.name`` (so annotations such as ``Markdown | Text`` still work):
    making one imports the real module and returns the real class's instance."""

    def real(cls: type) -> Any:
        return getattr(import_module(module), name)

    def new(cls: type, *args: Any, **kwargs: Any) -> Any:
        return real(cls)(*args, **kwargs)

    return _Deferring(name, (), {"real": classmethod(real), "__new__": new, "__module__": module})


def load_help_renderer() -> None:
    if "typer.rich_utils" in sys.modules:
        return
    stand_ins: dict[str, ModuleType] = {}
    for module, name in DEFERRED.items():
        if module not in sys.modules:
            stand_in = ModuleType(module)
            setattr(stand_in, name, _stand_in(module, name))
            stand_ins[module] = stand_in
    sys.modules.update(stand_ins)
    try:
        import_module("typer.rich_utils")
    finally:  # only typer.rich_utils holds a stand-in: anything else importing them gets the real module
        for module, stand_in in stand_ins.items():
            if sys.modules.get(module) is stand_in:
                del sys.modules[module]
