"""``from pbase import pbase``: the 2004 spelling, kept for the seed programs."""

from persist._pbase import pbase

__all__ = ["pbase"]
