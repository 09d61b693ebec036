"""The `python` stage: run a user function over each batch, or over each record."""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Literal

import pyarrow as pa
from pydantic import field_validator

from loglake.schemas.config import StageConfig
from loglake.schemas.errors import ConfigError
from loglake.schemas.registry import register_stage
from loglake.schemas.stage import NodeContext, StageOutput, split_failures

__all__ = ["PythonConfig", "PythonStage"]

log = logging.getLogger(__name__)

_import_lock = threading.Lock()


class PythonConfig(StageConfig):
    """Run your own Python function: on the whole batch (fast) or on each record as a dict (simple).

    Example:
        enrich: {type: python, function: "transforms:add_team", mode: records}
    """

    type: Literal["python"]
    function: str
    """`module:function`; the module is imported from the pipeline file's folder or from the Python path."""
    mode: Literal["batch", "records"] = "batch"
    """`batch`: f(RecordBatch) returns a RecordBatch, Table, list of dicts or None; `records`: f(dict) returns a dict, a list of dicts or None (None drops the record)."""

    @field_validator("function")
    @classmethod
    def _check_function(cls, value: str) -> str:
        module, _, name = value.partition(":")
        if not module.strip() or not name.strip() or " " in value:
            raise ValueError(f"'{value}' is not 'module:function' (for example 'transforms:add_team')")
        return value


def _module_file(base_dir: Path, module: str) -> Path | None:
    """The file `module` would be loaded from inside `base_dir`, if it is there."""
    stem = base_dir.joinpath(*module.split("."))
    for candidate in (stem.with_suffix(".py"), stem / "__init__.py"):
        if candidate.is_file():
            return candidate.resolve()
    return None


def _import(module: str, base_dir: Path) -> ModuleType:
    """Import `module` with `base_dir` first on the path; a module of that name cached from elsewhere is reloaded."""
    local = _module_file(base_dir, module)
    with _import_lock:
        cached = sys.modules.get(module)
        if local is not None and cached is not None and Path(getattr(cached, "__file__", "") or "").resolve() != local:
            del sys.modules[module]
        sys.path.insert(0, str(base_dir))
        try:
            return importlib.import_module(module)
        finally:
            sys.path.remove(str(base_dir))


def _load(spec: str, base_dir: Path) -> Callable[..., Any]:
    """The callable named by `module:function`, or a ConfigError saying why it cannot be used."""
    module_name, _, attribute = spec.partition(":")
    try:
        module = _import(module_name, base_dir)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            message = f"module '{module_name}' not found in {base_dir} or on the Python path"
            raise ConfigError(message, field="function") from None
        raise ConfigError(f"importing '{module_name}' failed: ModuleNotFoundError: {exc}", field="function") from None
    except Exception as exc:  # a user module may raise anything while it is imported
        raise ConfigError(f"importing '{module_name}' failed: {type(exc).__name__}: {exc}", field="function") from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            names = [n for n in dir(target) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"'{module_name}' has no attribute '{attribute}'{hint}", field="function")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"'{spec}' is a {type(target).__name__}, not a function", field="function")
    try:
        inspect.signature(target).bind(None)
    except TypeError as exc:
        raise ConfigError(f"'{spec}' cannot be called with one argument: {exc}", field="function") from None
    except ValueError:
        pass  # no signature available (some builtins): trust it
    return target  # type: ignore[no-any-return]


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def _as_batch(result: Any, like: pa.RecordBatch) -> pa.RecordBatch:
    """A batch-mode result as one RecordBatch (None: no records)."""
    if result is None:
        return like.slice(0, 0)
    if isinstance(result, pa.RecordBatch):
        return result
    if isinstance(result, pa.Table):
        batches = result.combine_chunks().to_batches()
        return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=result.schema)
    if isinstance(result, list) and all(isinstance(row, dict) for row in result):
        return _from_records(result, like.schema)
    raise TypeError(f"returned {type(result).__name__}; return a RecordBatch, a Table, a list of dicts or None")


def _from_records(rows: list[dict[str, Any]], hint: pa.Schema) -> pa.RecordBatch:
    """Records as a batch; keys that the input has keep the input's type when their values fit it."""
    if not rows:
        return pa.RecordBatch.from_pylist([], schema=hint)
    keys = list(dict.fromkeys(key for row in rows for key in row))
    arrays = []
    for key in keys:
        values = [row.get(key) for row in rows]
        index = hint.get_field_index(key)
        try:
            arrays.append(pa.array(values, hint.field(index).type) if index >= 0 else pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            if index < 0:
                raise
            arrays.append(pa.array(values))
    return pa.RecordBatch.from_arrays(arrays, names=keys)


@register_stage(PythonConfig)
class PythonStage:
    """Calls the user function once per batch (`batch` mode) or once per record (`records` mode)."""

    outputs: ClassVar[tuple[str, ...]] = ("dropped",)

    def __init__(self, config: PythonConfig, ctx: NodeContext) -> None:
        self.config = config
        self.ctx = ctx
        self._function = _load(config.function, ctx.base_dir)

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """The function's output; a failure sends the batch (batch mode) or the record (records mode) to `on_error`."""
        if self.config.mode == "batch":
            return self._process_batch(batch)
        return self._process_records(batch)

    def _finish(self, good: pa.RecordBatch, failed: pa.RecordBatch, errors: list[str]) -> StageOutput:
        return split_failures(good, failed, errors, self.ctx.node, self.config.on_error)

    def _process_batch(self, batch: pa.RecordBatch) -> StageOutput:
        try:
            out = _as_batch(self._function(batch), batch)
        except Exception as exc:  # user code: any exception fails the batch, never the pipeline
            log.debug(
                "%s: %s failed on a batch of %d records",
                self.ctx.node, self.config.function, batch.num_rows, exc_info=True,
            )
            return self._finish(batch.slice(0, 0), batch, [_describe(exc)] * batch.num_rows)
        return StageOutput(main=out)

    def _process_records(self, batch: pa.RecordBatch) -> StageOutput:
        out: list[dict[str, Any]] = []
        failed: list[int] = []
        errors: list[str] = []
        for index, record in enumerate(batch.to_pylist()):
            try:
                result = self._function(record)
                if isinstance(result, list) and not all(isinstance(row, dict) for row in result):
                    raise TypeError("returned a list with items that are not dicts")
                if result is not None and not isinstance(result, (dict, list)):
                    raise TypeError(f"returned {type(result).__name__}; return a dict, a list of dicts or None")
            except Exception as exc:  # user code: any exception fails only this record
                failed.append(index)
                errors.append(_describe(exc))
                continue
            if isinstance(result, dict):
                out.append(result)
            elif result:
                out.extend(result)
        if failed:
            log.debug(
                "%s: %s failed on %d of %d records", self.ctx.node, self.config.function, len(failed), batch.num_rows
            )
        try:
            good = _from_records(out, batch.schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            message = f"the returned records do not fit one schema: {_describe(exc)}"
            own = dict(zip(failed, errors))
            return self._finish(batch.slice(0, 0), batch, [own.get(i, message) for i in range(batch.num_rows)])
        return self._finish(good, batch.take(pa.array(failed, pa.int64())), errors)
