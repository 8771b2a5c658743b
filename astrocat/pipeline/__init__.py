"""Partition planning and execution on Dask (embedded LocalCluster or an existing one)."""
