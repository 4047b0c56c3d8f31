"""Provider statement parsers: CSV (a column map per provider), camt.053, MT940."""
