"""Postroom repository package."""
