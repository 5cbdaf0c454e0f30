"""Skip markers shared by the tests, each saying what is missing and how to get it."""

from __future__ import annotations

import shutil

import pytest

#: For tests that draw pictures with graphviz's `dot` program: skip, saying how to get it.
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None,
    reason="needs graphviz's `dot` program, which is not on PATH: install graphviz "
    "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz)",
)
