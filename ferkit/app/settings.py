"""Defaults shared by the server and its CLI verb (kept free of heavy imports)."""

DEFAULT_MAX_UPLOAD_MB = 10.0
# Images decoded and classified at once; the others wait.  Decoding a 40-megapixel photo (the
# largest read whole) peaks at about 380 MB (530 MB for a transparent PNG; 120 MB once decoded: peak
# ru_maxrss of read_image on a 6300x6300 JPEG / RGBA PNG, 2026-11-24), so this bounds the server's
# memory: about 2 GB at worst.  On 2 cores, 4 serves as many requests per
# second as 16 (59 vs 58/s, benchmarks/serve_load.py) and 2 about a fifth fewer (49/s).
DEFAULT_MAX_CONCURRENT = 4
# Uploads wait for a turn with their bytes in memory: all uploads held at once (being read, waiting,
# being analysed) may take this many full-size uploads per turn; past that a new one gets 503 at
# once, so a crowd of clients cannot make the server hold more than 16 x 10 MB by default.
HELD_UPLOADS_PER_TURN = 4
# Host headers a server bound to this machine answers: a web page whose name has been rebound to
# 127.0.0.1 (DNS rebinding) sends its own name and is refused.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
