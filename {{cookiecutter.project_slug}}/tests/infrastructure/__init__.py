# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
