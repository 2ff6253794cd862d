"""The index directory's parts and the work that keeps them consistent: the catalog
(SQLite), Chroma, the lexical BM25 index, the dense model, the manifest, the write lock;
ingest, sync, check, repair and rebuild."""
