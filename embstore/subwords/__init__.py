"""Sub-word (character n-gram) vectors, as fastText builds them: pure numpy, no SQLite or FAISS."""
