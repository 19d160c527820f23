"""Postroom correspondence package."""
