"""Tests for genft_search.method (a package so that test basenames may repeat across tests/)."""
