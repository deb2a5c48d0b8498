"""The library engine: settings and paths, catalog, scanning, indexing, search. No Qt here."""
