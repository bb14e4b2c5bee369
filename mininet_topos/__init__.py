"""Mininet spine-leaf fabrics and helpers to run them against fabricd."""
