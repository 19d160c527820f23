"""Postroom output package."""
