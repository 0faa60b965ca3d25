# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The web API (FastAPI): `create_app()` in app.py, one module per group of routes, the
dependencies routes share, and the problem documents every error is sent as (problems.py)."""
