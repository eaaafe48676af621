"""Embedding benchmarks: the corpus, the runner over batch sizes and backends, and its records."""
