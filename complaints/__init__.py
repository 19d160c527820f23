"""Postroom complaints package."""
