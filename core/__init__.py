"""Shared basics every floor may use: our exception types, the LOCALBENCH_HOME paths, byte units."""
