"""The end-to-end nginx/Apache access-log benchmark: Kafka → grok → timestamp → geoip → user_agent → route → window → Parquet.

Modules (each run as `python -m nginx.<module>` from benchmarks/, so the launcher stays small):

- `data`: the input, resampled deterministically from ../shared/data/apache_access_10k.log into benchmarks/work/;
- `produce`: creates the topic on the local broker and produces the input to it (a child process);
- `children`: running one measured child (wall time, peak RSS from wait4) and reading `loglake run`'s summary;
- `pipeline.yaml`: the loglake pipeline under test;
- `bytewax_flow`: what the plain-Bytewax baselines share (Kafka settings, window, route, Parquet sinks);
- `naive_flow`, `tuned_flow`, `transport_flow`: baselines (a), (b) and (c);
- `check`: the correctness checks and lake sizes, with DuckDB in a child process;
- `file_copy`: the pipeline reading a file instead of Kafka, and variants of it (for the lake benchmarks);
- `queries`: the lake benchmark's queries, their warm timings and `EXPLAIN ANALYZE` evidence;
- `profile`: a py-spy profile of one loglake run, summarised by function and by stage.
"""
