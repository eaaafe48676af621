"""The memory plan: estimates, the quantization recommender, reports, the load guard and runtime choices."""
