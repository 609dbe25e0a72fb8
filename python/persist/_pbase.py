"""pbase: the base class of user objects kept in a store, and persist.Object.

An unbound instance is an ordinary Python object. Once stored (``root['Joe'] = person(...)``),
its attributes move into a persistent attribute dict and the instance is *bound*: reading,
setting and deleting attributes go to the store. Reading a stored object gives an instance of
its class made without calling ``__init__``; the class is found by module and qualified name
among modules the reader has already imported (never imported on its behalf), and only a
pbase subclass is used. Otherwise the reader gets a :class:`persist.Object` with the same
attributes.
"""

from __future__ import annotations

import sys
from typing import Any

_CORE = "_p_core"


def _core(self: Any) -> Any:
    return object.__getattribute__(self, "__dict__").get(_CORE)


class pbase:
    """Base class of user objects stored by reference, with persistent attributes.

    Subclass it and store an instance (``root['joe'] = Person('Joe', 27)``): the instance
    becomes *bound*, its attributes move into the store, and setting, reading and deleting
    them from then on changes the store in place, for every process. Before it is stored, an
    instance is an ordinary Python object. Attribute values follow the rules of dict values
    (lists and dicts are copied in and read back as proxies); a missing attribute raises
    :exc:`AttributeError`. Names that start with ``_p_`` are not stored: they stay on one
    Python instance.

    Reading a stored object gives an instance of its class made without calling
    ``__init__``. The class is found by its module and qualified name among the modules the
    reading process has already imported (never imported on its behalf), and only a
    ``pbase`` subclass is used; otherwise the reader gets a :class:`persist.Object` with the
    same attributes. Two names may refer to one stored object; cycles are allowed.

    Unlike ordinary objects, instances cannot be pickled (:exc:`TypeError`), and an
    attribute value that cannot be stored raises :exc:`TypeError` naming its type.
    """

    def __init__(self) -> None:
        """Nothing to set up: subclasses call it as the 2004 programs do,
        ``pbase.__init__(self)``."""

    def __getattribute__(self, name: str) -> Any:
        if not (name.startswith("__") or name.startswith("_p_")):
            core = _core(self)
            if core is not None:
                try:
                    return core[name]
                except KeyError:
                    pass
        return object.__getattribute__(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        core = _core(self)
        if core is None or name.startswith("_p_"):
            object.__setattr__(self, name, value)
        else:
            core[name] = value

    def __delattr__(self, name: str) -> None:
        core = _core(self)
        if core is None or name.startswith("_p_"):
            object.__delattr__(self, name)
            return
        try:
            del core[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        core = _core(self)
        if core is None:
            return object.__repr__(self)
        attrs = ", ".join(f"{k}={v!r}" for k, v in core.items())
        return f"<{type(self).__qualname__} ({attrs})>"

    def __reduce__(self) -> Any:
        raise TypeError("persist objects cannot be pickled")

    def to_python(self) -> dict[str, Any]:
        """The attributes as a plain dict, deep-copied (as :meth:`persist.Dict.to_python`);
        an instance not yet stored gives a shallow copy of its ``__dict__``."""
        core = _core(self)
        if core is None:
            return dict(object.__getattribute__(self, "__dict__"))
        return core.to_python()


class Object(pbase):
    """A stored object whose class the reading process has not imported.

    ``p_class`` is the stored class name (``module:qualname``); the attributes are read and
    written as on the original.
    """

    @property
    def p_class(self) -> str:
        """The stored class name, ``module:qualname`` (``"app.models:Person"``)."""
        return _core(self)._class_name()

    def __repr__(self) -> str:
        core = _core(self)
        attrs = ", ".join(f"{k}={v!r}" for k, v in core.items())
        return f"<persist.Object {core._class_name()} ({attrs})>"


def _find_class(name: str) -> type | None:
    module, _, qual = name.partition(":")
    mod = sys.modules.get(module)
    if mod is None:
        return None
    obj: Any = mod
    for part in qual.split("."):
        namespace = getattr(obj, "__dict__", None)  # never a module's __getattr__
        obj = namespace.get(part) if namespace is not None else None
        if obj is None:
            return None
    if isinstance(obj, type) and issubclass(obj, pbase):
        return obj
    return None


def _revive(class_name: str, core: Any) -> pbase:
    """Called by the native layer: an instance for a stored object, without __init__."""
    cls = _find_class(class_name) or Object
    inst = object.__new__(cls)
    object.__getattribute__(inst, "__dict__")[_CORE] = core
    return inst
