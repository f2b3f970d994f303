"""Make the repository importable as the collection pulse.infra (ansible_collections.pulse.infra)."""

import sys
from pathlib import Path

COLLECTIONS = Path(__file__).resolve().parents[3] / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))


# ------------------------------------------------------------------ shared by the module tests
from unittest import mock  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture
def no_sleep():
    """Retries and waits without real sleeping."""
    with mock.patch("ansible_collections.amazon.aws.plugins.module_utils.cloud.time.sleep"):
        yield
