"""Integrations at the edge: optional third-party tools fed from the results store.

Nothing else in harness imports these modules; each imports its optional dependency
itself and says which extra installs it when it is missing (exit 2, one line).
"""
