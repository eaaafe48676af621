"""The quantization lab: the GGUF ladder, perplexity and KL divergence, the variants compared and their
summary.
"""
