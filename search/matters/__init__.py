"""E-discovery: matters, their saved searches, legal holds placed from them, production exports, and each
matter's hash-chained chain of custody."""
