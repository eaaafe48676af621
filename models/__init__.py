"""Model files on disk: the catalog of runnable models, GGUF headers, HF folders, conversions and ladders."""
