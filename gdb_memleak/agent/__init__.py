"""The in-process recorder (fast engine): its C source and how it is built."""

from __future__ import annotations
