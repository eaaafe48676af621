"""Answers side by side: the entries compared, blind arena rounds, votes and ratings, the live race and
the prompt queue.
"""
