"""Type stubs for the native module ``persist._persist`` (src/py/)."""

from typing import Final

# The native module exports the classes of persist._errors under these names (the same
# objects, not copies).
from persist._errors import ClosedError as ClosedError
from persist._errors import CorruptionError as CorruptionError
from persist._errors import Error as Error
from persist._errors import FormatError as FormatError
from persist._errors import LockTimeout as LockTimeout
from persist._errors import ReadOnlyError as ReadOnlyError
from persist._errors import StoreFullError as StoreFullError

# PyO3 fills in __all__ as names are added to the module.
__all__ = [
    "__version__",
    "FORMAT_VERSION",
    "Error",
    "FormatError",
    "CorruptionError",
    "StoreFullError",
    "LockTimeout",
    "ClosedError",
    "ReadOnlyError",
]

__version__: Final[str]
"""The package version (the crate's version in Cargo.toml)."""

FORMAT_VERSION: Final[int]
"""The store file format version this build reads and writes (the header's version field)."""
