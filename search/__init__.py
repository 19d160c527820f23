"""Postroom search package."""
