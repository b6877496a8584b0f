"""Tests of the guard console."""
