"""Helpers shared by test modules (importable as ``support.*`` because ``tests/`` is on ``sys.path``).

Fixtures live in the ``conftest.py`` files; plain functions and constants live here, so no test has
to import a ``conftest`` module by name (which one ``conftest`` is depends on collection order).
"""
