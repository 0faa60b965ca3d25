# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""A Redis server for development and tests, with no Docker and no system install
(redis_server.py), and `just dev`'s runner of the server, a worker and the API (dev.py).
"""
