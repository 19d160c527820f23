"""Postroom records package."""
