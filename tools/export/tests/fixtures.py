"""The golden fixtures of ../shared/reference/eloftr-fixtures (HF's own code on seeded weights), found from here."""
from __future__ import annotations

import functools
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import torch  # noqa: E402

from videomatch_export import checkpoint, safetensors_io  # noqa: E402

FIXTURES = os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "shared", "reference", "eloftr-fixtures"))
SIZES = {"tiny": (128, 160), "default": (480, 640)}

torch.set_grad_enabled(False)
# Debian's torch starts with one thread; the suite runs on every core the machine has.
torch.set_num_threads(max(1, os.cpu_count() or 1))


def folder(config: str) -> str:
    return os.path.join(FIXTURES, config)


def skip_unless(config: str):
    """Skips a test (class) with a message when the fixture is absent."""
    present = os.path.isfile(os.path.join(folder(config), "golden.safetensors"))
    return unittest.skipUnless(present, f"../shared/reference/eloftr-fixtures/{config} is absent; this test compares with HF's outputs stored there")


@functools.lru_cache(maxsize=None)
def golden(config: str) -> dict:
    return safetensors_io.read(os.path.join(folder(config), "golden.safetensors"))[0]


def build(config: str, **options):
    height, width = SIZES[config]
    return checkpoint.build(folder(config), height, width, **options)[0]


def pixels(config: str, pair: str) -> torch.Tensor:
    return torch.from_numpy(golden(config)[f"{pair}.pixel_values"])
