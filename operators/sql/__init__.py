"""SQL expressions in DuckDB's dialect, compiled once and evaluated over whole Arrow batches.

`compile_expression` checks an expression when the pipeline is built (`expression`); `SqlEvaluator`
evaluates named expressions over a batch with one query on a per-thread DuckDB connection (`evaluate`,
`session`); `result_types` and `type_problems` bind them to the field types known before a run (`binding`).
"""

from loglake.operators.sql.binding import TypeNote, result_types, type_problems
from loglake.operators.sql.evaluate import MAX_QUERIES_PER_BATCH, Evaluation, SqlEvaluator
from loglake.operators.sql.expression import SqlExpression, compile_expression

__all__ = [
    "SqlExpression", "Evaluation", "SqlEvaluator", "compile_expression", "MAX_QUERIES_PER_BATCH",
    "TypeNote", "result_types", "type_problems",
]
