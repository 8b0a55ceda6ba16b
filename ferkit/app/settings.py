"""Defaults shared by the server and its CLI verb (kept free of heavy imports)."""

DEFAULT_MAX_UPLOAD_MB = 10.0
# Images decoded and classified at once; the others wait.  A decoded 40-megapixel photo takes
# about 120 MB, so this bounds the server's memory, and more would not run faster on a few cores.
DEFAULT_MAX_CONCURRENT = 2
# Host headers a server bound to this machine answers: a web page whose name has been rebound to
# 127.0.0.1 (DNS rebinding) sends its own name and is refused.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
