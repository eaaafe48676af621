"""Stored results of every kind: the SQLite store, records to frames and files (csv, json, jsonl, sql,
md), import and export.
"""
