# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The queue dashboard at /dashboard: workers, counts, a 15-minute chart, recent and failed jobs,
dead letters (requeue, purge) and job lookup (abort). Off unless `DASHBOARD_PASSWORD` is set.

routes.py serves it, security.py guards it, snapshot.py reads what it shows; templates/ and
static/ are its page, its one script and its style sheet. See docs/dashboard.md.
"""

from .routes import router

__all__ = ["router"]
