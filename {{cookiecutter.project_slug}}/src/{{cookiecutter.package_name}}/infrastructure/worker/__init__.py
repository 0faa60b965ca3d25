# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The worker side: arq's worker with its own loop (loop.py, run by `python -m` on this
package), retries and dead letters (retries.py), the functions built from the registry
(functions.py), and the start-up and shutdown hooks (hooks.py).
"""
