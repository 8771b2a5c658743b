"""Declarative tables (CSV/TOML) the code derives its column names and rules from."""
