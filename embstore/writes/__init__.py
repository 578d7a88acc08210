"""Every write to a store: loading, word changes and index management.

Each one reads a generation, does its slow work outside the write lock, and commits only
if the store is still at that generation (``Catalog.commit_at``); new files are claimed
while written and removed if the commit does not happen.
"""
