"""Defaults shared by the server and its CLI verb (kept free of heavy imports)."""

DEFAULT_MAX_UPLOAD_MB = 10.0
