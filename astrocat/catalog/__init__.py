"""The Parquet catalog: schema, parts and atomic commit, reading, science summaries."""
