"""The bottom layer: the SQLite catalog, the FAISS index files, their names, durability,
and the verified opening of one generation of a store. Nothing here reasons about queries."""
