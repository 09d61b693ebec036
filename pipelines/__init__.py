"""The engine: YAML → validated spec → DAG → Bytewax dataflow; run, query, the CLI."""
