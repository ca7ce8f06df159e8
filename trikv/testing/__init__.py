"""Test-only helpers that ship in the wheel but stay inert: the fault plugin (`trikv.testing.plugin`) runs only
in a member started with ``TRIKV_TEST_PLUGIN=trikv.testing.plugin``. Nothing in actors/ or storage/ imports
this package (tests/test_layers.py)."""
