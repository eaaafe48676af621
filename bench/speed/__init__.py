"""Speed benchmarks: llama-bench's tests, plans and method, the runner and its records, hygiene, depth,
A/B, sweeps, servers; `runner.run_and_store` is the one entry that the CLI and every tab call.
"""
