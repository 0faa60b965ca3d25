# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The queue's records in Redis, and the connection to it: jobs and their results
(job_handle.py, job_writes.py), dead letters, depth, heartbeats, and how records are read and
written (records.py, serialization.py). Every other layer reads and writes through it; it
imports none of them.
"""
