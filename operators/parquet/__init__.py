"""The `parquet` sink: records into a Hive-partitioned, zstd-compressed Parquet dataset, committed atomically.

`config` holds the YAML model, `partitions` splits batches into `date=…/hour=…` folders, `align` fits
batches to an open file's schema, `sort` orders a file's runs by `sort_by`, `encoding` turns `column_encoding`
into writer options, `part_file` writes one file under a temporary name and commits it, `writer` keeps one
worker's open files and rolls them, and `sink` ties it together and registers `parquet`.
"""

from loglake.operators.parquet.config import ParquetConfig
from loglake.operators.parquet.sink import ParquetSink
from loglake.operators.parquet.writer import ParquetSinkWriter

__all__ = ["ParquetConfig", "ParquetSink", "ParquetSinkWriter"]
