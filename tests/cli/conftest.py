"""Every test here runs the `kerasdl` command end to end: marked `cli` (`pytest -m cli`)."""

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/cli/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.cli)
