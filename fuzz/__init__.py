"""Fuzz harnesses (make fuzz); see fuzz/run.py."""
