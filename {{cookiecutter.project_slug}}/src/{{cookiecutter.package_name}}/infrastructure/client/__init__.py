# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The client side: what a web app, a script or a job calls to queue jobs and follow them
(enqueue.py), and the `@job` / `@cron_job` declarations with their typed handles (handles.py).
It imports the store and the registry, never the worker.
"""
