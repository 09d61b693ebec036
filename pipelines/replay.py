"""Planning a replay: which source is replaced by what, where the output goes, and what must not be written.

A replay runs a pipeline's own stages over bounded history: `files` (a bounded `file` source), `lake` (a `lake`
source over a dataset) or `kafka` (the pipeline's Kafka source between two times or offsets, without its
consumer group). The loaded spec is transformed, never the YAML text: the chosen source's node gets a new
config, the other sources and the nodes only they feed are left out, and sinks named in `to` write to another
dataset or to stdout. Writing where the pipeline writes in normal runs is refused unless `force`.

`dead-letter` re-runs the records that failed, after the YAML was fixed: for each stage dead letters name
(`_error_node`), a `lake` source over the dead-letter dataset feeds that stage its records as it received them;
the stages before it do not run. The output joins the live datasets (that is the point, so no `force` is
needed), and after the run the replayed rows leave the dead-letter dataset.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from loglake.operators.lake_files import OnCorrupt
from loglake.operators.lake_source import LakeConfig, LakeSource
from loglake.pipelines.compile import CompiledPipeline, compile_pipeline
from loglake.pipelines.dead_letters import DeadLetterSource, ReadRows, dead_letter_folder, remove_rows
from loglake.pipelines.lake import discover_datasets, pipeline_datasets
from loglake.pipelines.nodes import did_you_mean
from loglake.pipelines.progress import Total, estimate_lines
from loglake.pipelines.rebuild import Rebuild, RebuildOutcome
from loglake.pipelines.runner import RunOptions, RunResult, run_compiled
from loglake.pipelines.spec import DEAD_LETTER_NODE, NodeSpec, PipelineSpec, PortRef, load_pipeline
from loglake.schemas.config import NodeConfig
from loglake.schemas.connectors import EndOfInput, Source, SourcePartition
from loglake.schemas.errors import ConfigError, TerminalError, UsageError
from loglake.schemas.records import ERROR_NODE_COLUMN
from loglake.schemas.registry import Registration, lookup
from loglake.schemas.stage import NodeContext, NodeCounters

__all__ = [
    "Origin", "OffsetRange", "ReplayError", "NothingToReplay", "ReplayRequest", "ReplayPlan", "DeadLetterRun", "plan_replay", "run_replay"
]

Origin = Literal["files", "lake", "kafka", "dead-letter"]
STDOUT = "stdout"
"""The `--to SINK=stdout` target: print the sink's records instead of writing them."""

_REPLACEABLE: dict[str, tuple[str, ...] | None] = {"files": ("file", "stdin"), "kafka": ("kafka",), "lake": None, "dead-letter": None}
"""Source types each origin can stand in for (None: any)."""
_HARMLESS_SINKS = ("stdout", "metrics")
"""Sink types that leave nothing behind, so a replay may run them as they are."""
_CARRIED = ("batch_size", "batch_bytes", "max_line_size", "encoding", "on_corrupt")
"""Options a replacement source takes over from the source it replaces."""
_FLAG_ORIGINS = {
    "--where": ("lake", "dead-letter"), "--since": ("lake", "kafka"), "--until": ("lake", "kafka"), "--offsets": ("kafka",), "--node": ("dead-letter",),
    "--on-corrupt": ("lake", "dead-letter"),
}
"""The origins each selecting flag applies to."""
_FLAGS = {"paths": "--from files", "dataset": "--from lake", "path": "--from lake", "where": "--where", "since": "--since", "until": "--until", "on_corrupt": "--on-corrupt"}


class ReplayError(UsageError):
    """A replay that cannot run as asked; the message names the flag at fault."""


class NothingToReplay(Exception):
    """Nothing matches what was asked (no dead letters): the message says where nothing was found."""


@dataclass(frozen=True)
class OffsetRange:
    """`--offsets P:FROM-TO`: offsets FROM to TO, both included, of partition P (`3`, or `topic/3` when the
    source reads several topics); without TO, to the end of the partition."""

    partition: str
    first: int
    last: int | None = None

    def __str__(self) -> str:
        return f"{self.partition}:{self.first}-{'' if self.last is None else self.last}"

    @classmethod
    def parse(cls, text: str) -> OffsetRange:
        """`0:100-199` or `topic/0:100-`; ValueError saying what is wrong."""
        partition, _, span = text.strip().rpartition(":")
        first, dash, last = span.partition("-")
        if not (partition.rpartition("/")[2].isdigit() and first.isdigit() and dash and (last.isdigit() or not last)):
            raise ValueError(f"'{text}' is not PARTITION:FROM-TO (e.g. 0:100-199, or 0:100- to the end)")
        found = cls(partition, int(first), int(last) if last else None)
        if found.last is not None and found.last < found.first:
            raise ValueError(f"'{text}': the last offset is before the first")
        return found

    def matches(self, name: str) -> bool:
        """Whether this range is about source partition `name` (`topic/3`)."""
        return name == self.partition or name.rpartition("/")[2] == self.partition


@dataclass(frozen=True)
class ReplayRequest:
    """What to replay and where to, as the command line says it."""

    origin: Origin
    paths: tuple[str, ...] = ()
    """`--from files`: files or globs, relative to `cwd`."""
    dataset: str | None = None
    """`--from lake`: a dataset name (the pipeline's, or in its lake) or a dataset folder."""
    where: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    offsets: tuple[OffsetRange, ...] = ()
    source: str | None = None
    """`--source`: the source node to replace (needed when several could be)."""
    node: str | None = None
    """`--from dead-letter --node`: replay only the dead letters of this stage."""
    to: tuple[tuple[str, str], ...] = ()
    """`--to`: (sink, dataset name or `stdout`) pairs."""
    force: bool = False
    """Write into the pipeline's own outputs anyway."""
    on_corrupt: OnCorrupt | None = None
    """`--on-corrupt`: what the lake source does with a file that is not readable Parquet (default: what the
    replaced lake source says, else `fail`)."""
    rebuild: bool = False
    """Replace the Parquet partitions `since`…`until` covers with the replay's output (see `rebuild`)."""

    def check(self) -> None:
        """Flags that do not go together, as a ReplayError naming them."""
        if self.rebuild:
            self._check_rebuild()
        given = {"--where": self.where is not None, "--since": self.since is not None, "--until": self.until is not None, "--offsets": bool(self.offsets), "--node": self.node is not None, "--on-corrupt": self.on_corrupt is not None}
        for flag, present in given.items():
            origins = _FLAG_ORIGINS[flag]
            if present and self.origin not in origins and not (self.rebuild and flag in ("--since", "--until")):
                raise ReplayError(f"{flag} applies to {' and '.join('--from ' + origin for origin in origins)} only")
        if self.offsets and (self.since is not None or self.until is not None):
            raise ReplayError("--offsets and --since/--until select the same thing two ways; give one of them")
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ReplayError(f"--since ({self.since.isoformat()}) is after --until ({self.until.isoformat()})")
        if self.origin == "files" and not self.paths:
            raise ReplayError("--from files needs at least one file or glob")
        if self.origin == "lake" and not self.dataset:
            raise ReplayError("--from lake needs a dataset name")

    def _check_rebuild(self) -> None:
        if self.origin == "dead-letter":
            raise ReplayError("--rebuild replaces time partitions; --from dead-letter adds the replayed records instead")
        if self.since is None or self.until is None:
            raise ReplayError("--rebuild needs --since and --until: the time range whose partitions it replaces")
        if self.offsets:
            raise ReplayError("--rebuild replaces a time range; select it with --since/--until, not --offsets")
        if any(target != STDOUT for _, target in self.to):
            raise ReplayError("--rebuild replaces the pipeline's own datasets; --to may only print a sink (SINK=stdout)")


@dataclass
class DeadLetterRun:
    """What a `--from dead-letter` replay reads, and what it removed from the dead-letter dataset after the run."""

    folder: Path
    """The dead-letter dataset."""
    read: ReadRows
    """The rows read, filled while the replay runs."""
    removed: int = 0


@dataclass
class ReplayPlan:
    """A compiled replay, ready to run without a checkpoint."""

    compiled: CompiledPipeline
    source: str
    """The source node that reads the history (the first of `sources`)."""
    description: str
    """What is replayed, for messages (`dataset 'access' from … to …`)."""
    total: Total | None
    """Records the source will read, where known."""
    sources: tuple[str, ...]
    """Every source node that reads history (one per failed stage for dead letters; else just `source`)."""
    dead_letters: DeadLetterRun | None = None
    rebuild: Rebuild | None = None
    rebuilt: RebuildOutcome | None = None
    """What `--rebuild` replaced, once the run is over."""

    def records_in(self) -> int:
        """Records the replay's sources have read so far."""
        return sum(self.compiled.contexts[name].counters["records_in"] for name in self.sources)


def plan_replay(pipeline: str | Path, request: ReplayRequest, cwd: Path | None = None) -> ReplayPlan:
    """Load the pipeline, replace its source as asked, redirect sinks, and refuse to write into live outputs."""
    request.check()
    cwd = cwd or Path.cwd()
    spec = load_pipeline(pipeline)
    if request.origin == "dead-letter":
        return _plan_dead_letters(spec, request, cwd)
    chosen = _choose_source(spec, request)
    registration, config = _replacement(spec, chosen, request, cwd)
    probe = _construct(registration, config, spec, chosen.name, cwd)
    nodes = _fed_only_by(spec, {chosen.name})
    nodes[chosen.name] = dataclasses.replace(chosen, registration=registration, config=config)
    _redirect(nodes, request.to, chosen.name)
    rebuild = _staged_rebuild(spec, nodes, request)
    compiled = compile_pipeline(PipelineSpec(spec.name, spec.file, spec.header, nodes, spec.source), follow=False)
    if request.offsets:
        source = compiled.instances[chosen.name]
        keep = "offset" in getattr(chosen.config, "fields", ())
        compiled.instances[chosen.name] = _OffsetRangeSource(source, request.offsets, compiled.contexts[chosen.name], keep)
    _check_outputs(spec, compiled, request, getattr(probe, "folder", None))
    return ReplayPlan(compiled, chosen.name, _describe(request, chosen.name, probe), _total(request, probe), (chosen.name,), rebuild=rebuild)


def run_replay(plan: ReplayPlan, workers: int = 1) -> RunResult:
    """Run a planned replay to its end: no checkpoint read or saved, no offsets committed, no recovery snapshots.
    Dead letters read leave the dead-letter dataset after the run (not when it fails)."""
    try:
        result = run_compiled(plan.compiled, RunOptions(workers=workers, follow=False, checkpoint=False, maintenance=False))
    except BaseException:
        if plan.rebuild is not None:
            plan.rebuild.discard()
        raise
    if plan.rebuild is not None:
        plan.rebuilt = plan.rebuild.install()
    if plan.dead_letters is not None:
        plan.dead_letters.removed = remove_rows(plan.dead_letters.read.by_file())
    return result


def _staged_rebuild(spec: PipelineSpec, nodes: dict[str, NodeSpec], request: ReplayRequest) -> Rebuild | None:
    """For `--rebuild`, point the Parquet sinks at staging copies of their datasets; what to swap in after."""
    if not request.rebuild:
        return None
    assert request.since is not None and request.until is not None
    rebuild = Rebuild(request.since, request.until)
    try:
        rebuild.redirect(nodes, _sink_folders(spec, nodes))
    except UsageError as exc:
        raise ReplayError(str(exc)) from None
    return rebuild


def _sink_folders(spec: PipelineSpec, nodes: dict[str, NodeSpec]) -> dict[str, Path]:
    """Each Parquet sink's dataset folder, by sink name."""
    folders = {}
    for node in nodes.values():
        if node.kind == "sink" and node.type_name == "parquet":
            sink = node.registration.factory(node.config, NodeContext(node=node.name, base_dir=spec.base_dir, lake_dir=spec.lake_dir))
            folders[node.name] = Path(sink.dataset_dir)
    return folders


def _plan_dead_letters(spec: PipelineSpec, request: ReplayRequest, cwd: Path) -> ReplayPlan:
    """Feed each failed stage its dead letters from a source of their own; it and what follows it run."""
    folder = dead_letter_folder(spec)
    if folder is None:
        sink = spec.nodes[DEAD_LETTER_NODE].type_name
        raise ReplayError(f"--from dead-letter reads the dead-letter dataset, but this pipeline's dead_letter sink is a {sink} sink; only a parquet sink's records can be read back")
    counts = _failed_stages(spec, folder, request, cwd)
    described = "the dead letters" + (f" of stage '{request.node}'" if request.node else "") + f" in {folder}" + (f" where {request.where}" if request.where else "")
    if not counts:
        raise NothingToReplay(described)
    read = ReadRows()
    registration = dataclasses.replace(_lake_registration(), factory=functools.partial(DeadLetterSource, read=read))
    feeds = {stage: _feed(spec, registration, folder, stage, request) for stage in counts}
    nodes = _fed_from(spec, feeds)
    _redirect(nodes, request.to, "dead letters")
    compiled = compile_pipeline(PipelineSpec(spec.name, spec.file, spec.header, nodes, spec.source), follow=False)
    names = tuple(feed.name for feed in feeds.values())
    failed = ", ".join(f"{stage} ({count:,})" for stage, count in counts.items())
    return ReplayPlan(compiled, names[0], f"{described}: {failed}", Total(sum(counts.values())), names, DeadLetterRun(folder, read))


def _fed_from(spec: PipelineSpec, feeds: dict[str, NodeSpec]) -> dict[str, NodeSpec]:
    """The nodes that run when each stage named in `feeds` reads that source too and the pipeline's own sources
    are left out: those stages and what follows them."""
    nodes = {feed.name: feed for feed in feeds.values()}
    for name, node in spec.nodes.items():
        nodes[name] = dataclasses.replace(node, inputs=[*node.inputs, PortRef(feeds[name].name)]) if name in feeds else node
    fed = PipelineSpec(spec.name, spec.file, spec.header, nodes, spec.source)
    return _fed_only_by(fed, {feed.name for feed in feeds.values()})


def _lake_registration() -> Registration:
    registration = lookup("source", "lake")
    assert registration is not None
    return registration


def _failed_stages(spec: PipelineSpec, folder: Path, request: ReplayRequest, cwd: Path) -> dict[str, int]:
    """Dead letters per stage they failed in (`--node` only, meeting `--where`); a ReplayError for a stage the
    pipeline does not have."""
    stages = [node.name for node in spec.of_kind("stage")]
    if request.node is not None and request.node not in stages:
        raise ReplayError(f"--node {request.node}: the pipeline has no stage '{request.node}'{did_you_mean(request.node, stages, 'stages')}")
    if not folder.is_dir():
        return {}
    config = LakeConfig.model_validate({"type": "lake", "path": str(folder), "where": request.where, **_corrupt_option(request)})
    probe: LakeSource = _construct(_lake_registration(), config, spec, DEAD_LETTER_NODE, cwd)
    files = [path for paths in probe.files.values() for path in paths]
    if not files:
        return {}
    rows = probe.cursor().execute(f"SELECT {ERROR_NODE_COLUMN}, count(*) FROM ({probe.query(files)}) GROUP BY 1 ORDER BY 1").fetchall()
    counts = {str(stage): int(count) for stage, count in rows if request.node in (None, stage)}
    for stage, count in counts.items():
        if stage not in stages:
            raise ReplayError(
                f"{count:,} dead letters failed in '{stage}', and the pipeline has no stage '{stage}' to replay them into"
                f"{did_you_mean(stage, stages, 'stages')}; replay the others with --node STAGE"
            )
    return counts


def _corrupt_option(request: ReplayRequest) -> dict[str, OnCorrupt]:
    """`--on-corrupt` as a lake source option, when given."""
    return {} if request.on_corrupt is None else {"on_corrupt": request.on_corrupt}


def _feed(spec: PipelineSpec, registration: Registration, folder: Path, stage: str, request: ReplayRequest) -> NodeSpec:
    """The source node that reads the dead letters of `stage` (and `--where`), restored, into it, in batches like
    the pipeline's."""
    name = f"{stage}-dead-letters"
    if name in spec.nodes:
        raise ReplayError(f"--from dead-letter reads the dead letters of '{stage}' as a source named '{name}', a name the pipeline already uses")
    condition = f"{ERROR_NODE_COLUMN} = '{stage}'" + (f" AND ({request.where})" if request.where else "")
    config = LakeConfig.model_validate({"type": "lake", "path": str(folder), "where": condition, "batch_size": _batch_size(spec), **_corrupt_option(request)})
    return NodeSpec(name, "source", registration, config)


def _batch_size(spec: PipelineSpec) -> int:
    """The smallest batch the pipeline's sources make, so stages see batches no larger than in normal runs."""
    default = LakeConfig.model_fields["batch_size"].default
    return int(min([getattr(node.config, "batch_size", default) for node in spec.of_kind("source")], default=default))


def _choose_source(spec: PipelineSpec, request: ReplayRequest) -> NodeSpec:
    sources = spec.of_kind("source")
    types = _REPLACEABLE[request.origin]
    if request.source is not None:
        node = spec.nodes.get(request.source)
        if node is None or node.kind != "source":
            raise ReplayError(f"--source: no source '{request.source}' in {spec.file.name}{did_you_mean(request.source, [s.name for s in sources], 'sources')}")
        candidates = [node]
    else:
        candidates = sources
    fitting = [node for node in candidates if types is None or node.type_name in types]
    if len(fitting) == 1:
        return fitting[0]
    if not fitting:
        found = ", ".join(f"{node.type_name} source '{node.name}'" for node in candidates)
        raise ReplayError(f"--from {request.origin} replaces a {' or '.join(types or ())} source, and the pipeline has {found}")
    names = ", ".join(node.name for node in fitting)
    raise ReplayError(f"the pipeline has {len(fitting)} sources --from {request.origin} could replace ({names}); pick one with --source")


def _replacement(spec: PipelineSpec, chosen: NodeSpec, request: ReplayRequest, cwd: Path) -> tuple[Registration, NodeConfig]:
    """The registration and validated config of the source that reads the history instead of `chosen`."""
    if request.origin == "kafka":
        fields = list(getattr(chosen.config, "fields", []))
        update: dict[str, Any] = {"group": None, "start": request.since or "earliest", "stop_at": request.until or "end"}
        if request.offsets and "offset" not in fields:
            update["fields"] = [*fields, "offset"]  # the range is cut by offset; the column leaves again after
        return chosen.registration, chosen.config.model_copy(update=update)
    if request.origin == "files":
        paths = [str(cwd / path) for path in request.paths]
        return _validated("file", chosen.config, {"paths": paths, "follow": False, "start_at": "beginning"})
    assert request.dataset is not None
    folder = _dataset_folder(spec, request.dataset, cwd)
    return _validated("lake", chosen.config, {"path": str(folder), "where": request.where, "since": request.since, "until": request.until, **_corrupt_option(request)})


def _validated(type_name: str, old: NodeConfig, fields: dict[str, Any]) -> tuple[Registration, NodeConfig]:
    """A config of source type `type_name` with `fields`, carrying over how `old` batches and decodes (`_CARRIED`)."""
    registration = lookup("source", type_name)
    assert registration is not None
    shared = {name: getattr(old, name) for name in _CARRIED if name in registration.config.model_fields and name in type(old).model_fields}
    try:
        return registration, registration.config.model_validate({**shared, **fields, "type": type_name})
    except ValidationError as exc:
        field, message = _first_error(exc)
        raise ReplayError(f"{_FLAGS.get(field, '--from ' + type_name)}: {message}") from None


def _first_error(exc: ValidationError) -> tuple[str, str]:
    """The field and message of a validation error's first problem."""
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    return field, str(error["msg"]).removeprefix("Value error, ")


def _construct(registration: Registration, config: NodeConfig, spec: PipelineSpec, name: str, cwd: Path) -> Any:
    """Build the replacement source once, so a bad glob, dataset or condition is reported with its flag."""
    try:
        return registration.factory(config, NodeContext(node=name, base_dir=cwd, follow=False, lake_dir=spec.lake_dir))
    except ConfigError as exc:
        raise ReplayError(f"{_FLAGS.get(exc.field or '', '--from')}: {exc.message}") from None


def _dataset_folder(spec: PipelineSpec, dataset: str, cwd: Path) -> Path:
    """A dataset's folder: one the pipeline writes, one in its lake, or a folder given as a path."""
    known = {**discover_datasets(spec.lake_dir), **pipeline_datasets(spec)}
    if dataset in known:
        return known[dataset]
    if (cwd / dataset).is_dir() and ("/" in dataset or dataset.startswith(".")):
        return cwd / dataset
    raise ReplayError(f"--from lake: no dataset '{dataset}' in the lake {spec.lake_dir}{did_you_mean(dataset, sorted(known), 'datasets')}")


def _fed_only_by(spec: PipelineSpec, keep: set[str]) -> dict[str, NodeSpec]:
    """The nodes that still get records when only the sources `keep` run, their inputs from left-out nodes dropped."""
    gone = {node.name for node in spec.of_kind("source") if node.name not in keep}
    changed = True
    while changed:
        starved = [n.name for n in spec.nodes.values() if n.name not in gone and n.inputs and all(r.node in gone for r in n.inputs)]
        gone.update(starved)
        changed = bool(starved)
    return {
        name: dataclasses.replace(node, inputs=[ref for ref in node.inputs if ref.node not in gone])
        for name, node in spec.nodes.items()
        if name not in gone
    }


def _redirect(nodes: dict[str, NodeSpec], targets: tuple[tuple[str, str], ...], source: str) -> None:
    """Point each `--to SINK=TARGET` sink at stdout or at dataset TARGET: a parquet sink keeps its other
    options, any other sink becomes a parquet sink with default options."""
    for sink, target in targets:
        node = nodes.get(sink)
        if node is None or node.kind != "sink":
            sinks = [n.name for n in nodes.values() if n.kind == "sink"]
            raise ReplayError(f"--to {sink}={target}: no sink '{sink}' gets records from source '{source}'{did_you_mean(sink, sinks, 'sinks')}")
        kind = STDOUT if target == STDOUT else "parquet"
        registration = lookup("sink", kind)
        assert registration is not None
        try:
            config = registration.config.model_validate({"type": kind} if kind == STDOUT else {"type": kind, "dataset": target})
        except ValidationError as exc:
            raise ReplayError(f"--to {sink}={target}: {_first_error(exc)[1]}") from None
        if node.type_name == kind == "parquet":
            config = node.config.model_copy(update={"dataset": target, "path": None})
        nodes[sink] = dataclasses.replace(node, registration=registration, config=config)


def _check_outputs(spec: PipelineSpec, compiled: CompiledPipeline, request: ReplayRequest, reading: Path | None) -> None:
    """Refuse to write where normal runs write (datasets, topics, webhooks) unless forced, and always into the
    dataset being read."""
    live = {folder.resolve(): name for name, folder in pipeline_datasets(spec).items()}
    clashes: list[str] = []
    fixes: list[str] = []
    for node in compiled.graph.nodes:
        if node.kind != "sink":
            continue
        folder = getattr(compiled.instances[node.name], "dataset_dir", None)
        if folder is None:
            if node.type_name not in _HARMLESS_SINKS:
                clashes.append(f"{node.type_name} sink '{node.name}'")
                fixes.append(f"--to {node.name}={STDOUT}")
            continue
        folder = Path(folder).resolve()
        if reading is not None and folder == reading.resolve():
            raise ReplayError(f"sink '{node.name}' would write into {folder}, the dataset this replay reads; send it elsewhere with --to {node.name}=DATASET")
        if folder in live:
            clashes.append(f"dataset '{live[folder]}' (sink '{node.name}')")
            fixes.append(f"--to {node.name}={live[folder]}_replay")
    if clashes and not request.force:
        raise ReplayError(
            f"a replay would write where the pipeline writes in normal runs: {', '.join(clashes)}; send each elsewhere "
            f"({' '.join(fixes)}; SINK=stdout prints) or pass --force to write there anyway"
        )


def _describe(request: ReplayRequest, source: str, probe: Any) -> str:
    """What is replayed, in words: `2 files`, `dataset 'access' where … from … to …`, `source 'in' (Kafka) …`."""
    if request.origin == "files":
        count = len(probe.partitions())
        return f"{count} file{'s' if count != 1 else ''}"
    text = f"dataset '{request.dataset}'" if request.origin == "lake" else f"Kafka source '{source}'"
    if request.where:
        text += f" where {request.where}"
    if request.offsets:
        text += f" at offsets {', '.join(map(str, request.offsets))}"
    if request.since is not None:
        text += f" from {request.since.isoformat()}"
    if request.until is not None:
        text += f" to {request.until.isoformat()}"
    return text


def _total(request: ReplayRequest, probe: Any) -> Total | None:
    """Records to expect: counted in the lake, summed over closed offset ranges, estimated from file sizes."""
    if request.origin == "files":
        return estimate_lines(probe.partitions())
    if request.origin == "lake":
        return Total(probe.expected_records())
    if request.offsets and all(r.last is not None for r in request.offsets):
        return Total(sum(r.last - r.first + 1 for r in request.offsets if r.last is not None))
    return None


class _OffsetRangeSource:
    """A Kafka source cut to `--offsets`: only the partitions named, each from its first offset to its last."""

    def __init__(self, source: Source, ranges: tuple[OffsetRange, ...], ctx: NodeContext, keep_offsets: bool) -> None:
        self._source, self._ranges, self._ctx, self._keep_offsets = source, ranges, ctx, keep_offsets
        self._matched: dict[str, OffsetRange] | None = None

    def partitions(self) -> list[str]:
        """The source's partitions that a range names; TerminalError for a range that names none or several."""
        return [name for name in self._source.partitions() if name in self._chosen()]

    def open(self, partition: str, resume: Any | None) -> SourcePartition:
        """Read a partition from its range's first offset (or `resume`) to its last."""
        bounds = self._chosen()[partition]
        reader = self._source.open(partition, bounds.first if resume is None else resume)
        return _OffsetRangePartition(reader, bounds.last, self._ctx.counters, self._keep_offsets)

    def _chosen(self) -> dict[str, OffsetRange]:
        if self._matched is None:
            self._matched = self._match(self._source.partitions())
        return self._matched

    def _match(self, names: list[str]) -> dict[str, OffsetRange]:
        chosen: dict[str, OffsetRange] = {}
        for bounds in self._ranges:
            matched = [name for name in names if bounds.matches(name)]
            if len(matched) != 1:
                problem = f"which topic's? write TOPIC/{bounds.partition}:…" if matched else "the source has no such partition"
                raise TerminalError(f"--offsets {bounds}: {problem} (its partitions: {', '.join(names)})", self._ctx.node)
            chosen[matched[0]] = bounds
        return chosen


class _OffsetRangePartition:
    """A Kafka partition reader that ends after offset `last`."""

    def __init__(self, reader: SourcePartition, last: int | None, counters: NodeCounters, keep_offsets: bool) -> None:
        self._reader, self._last, self._counters, self._keep_offsets = reader, last, counters, keep_offsets
        self._done = False

    def read(self) -> pa.RecordBatch | None:
        """The next batch, cut at the range's last offset; `EndOfInput` after it (or at the end of the log)."""
        if self._done:
            raise EndOfInput
        batch = self._reader.read()
        if batch is None:
            return None
        if self._last is not None:
            within = pc.less_equal(batch.column("kafka_offset"), self._last)
            past = batch.num_rows - (pc.sum(within).as_py() or 0)
            if past:
                self._counters.add("records_in", -past)  # counted when read, but not replayed
                batch = batch.filter(within)
            self._done = past > 0 or self._reader.position() > self._last
        return batch if self._keep_offsets else batch.drop_columns(["kafka_offset"])

    def position(self) -> Any:
        """The partition's offset."""
        return self._reader.position()

    def close(self) -> None:
        """Close the partition's consumer."""
        self._reader.close()
