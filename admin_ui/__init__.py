"""Postroom admin_ui package."""
