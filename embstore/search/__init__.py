"""Search over unit rows: the exact and approximate engines, index kinds, HNSW links and
the analogy screen. Works on IDs and vectors; knows nothing of SQLite or words."""
