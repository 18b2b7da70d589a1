"""Browser tests of the managers page (a package, so its conftest never shadows tests/conftest.py)."""
