"""Models in their own processes (not a backend): the worker, its supervisor, the proxy engines, streams,
the pool and fault names.
"""
