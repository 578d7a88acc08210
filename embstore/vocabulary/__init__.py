"""Words and their IDs: lookups, case fallback, suggestions, and the words held in memory."""
