"""Test-wide settings: no hub access, deterministic threads, shared fixtures."""

from __future__ import annotations

import os

# A hub miss otherwise takes ~24 s to fail; tests never reach the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
