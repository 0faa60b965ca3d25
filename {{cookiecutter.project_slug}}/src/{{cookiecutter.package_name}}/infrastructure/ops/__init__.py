# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""What operators run and read: the CLI behind the `just` recipes (cli.py), the Prometheus
metrics (metrics.py), and the record of finished jobs the dashboard shows (activity.py).
It reads the store; it never imports the worker.
"""
