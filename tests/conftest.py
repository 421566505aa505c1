"""Shared test helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


def shared_file(*parts: str) -> Path:
    """A file of the shared evaluation data beside the checkout; skip locally without it, fail in CI."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: CI provides the shared data beside the checkout", pytrace=False)
        pytest.skip(f"{path} is not here")
    return path
