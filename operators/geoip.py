"""The `geoip` stage: look IP addresses up in a MaxMind database and add country, city, location and ASN fields.

The lookups cannot be vectorised: a MaxMind database is a binary search tree read one address at a time
(libmaxminddb over an mmap), so each distinct address of a batch is looked up once in Python, results are
remembered across batches as Arrow rows, and spread over the records with `take` (no per-row Python).
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import maxminddb
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from loglake.operators.distinct_cache import DistinctCache, Failure, Found, text_column, with_column
from loglake.schemas.config import StageConfig
from loglake.schemas.errors import ConfigError
from loglake.schemas.registry import register_stage
from loglake.schemas.stage import NodeContext, StageOutput, split_failures

__all__ = ["GeoField", "GeoipConfig", "GeoipStage"]

log = logging.getLogger(__name__)

GeoField = Literal[
    "country_code", "country_name", "city", "region", "latitude", "longitude", "time_zone", "asn", "organization"
]
"""The fields a `geoip` stage can add."""

_TYPES: dict[str, pa.DataType] = {
    "country_code": pa.string(),
    "country_name": pa.string(),
    "city": pa.string(),
    "region": pa.string(),
    "latitude": pa.float64(),
    "longitude": pa.float64(),
    "time_zone": pa.string(),
    "asn": pa.int64(),
    "organization": pa.string(),
}
"""Arrow type of each field, in the default struct order."""

_CITY = ("country_code", "country_name", "city", "region", "latitude", "longitude", "time_zone")
_COUNTRY = ("country_code", "country_name")
_ASN = ("asn", "organization")
_OFFERED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Enterprise", _CITY),
    ("City", _CITY),
    ("Country", _COUNTRY),
    ("ASN", _ASN),
    ("ISP", _ASN),
)
"""Fields each kind of database offers, by a word of its `database_type` (checked in order)."""


DEMO_DATABASE = "geolite2-demo"
"""The `database` value that names the GeoLite2 City database shipped in the `maxminddb-geolite2` wheel."""


def _demo_database() -> Path:
    """The demo database's file; a ConfigError naming the extra to install when it is missing."""
    try:
        from _maxminddb_geolite2 import geolite2_database
    except ImportError:
        raise ConfigError(
            f"'{DEMO_DATABASE}' needs the maxminddb-geolite2 package: pip install 'loglake[demo]'", field="database"
        ) from None
    return Path(geolite2_database())


class GeoipConfig(StageConfig):
    """Look an IP address up in a MaxMind (`.mmdb`) database and add a struct of location or network fields.

    Private, loopback, reserved and unknown addresses get a null struct; a value that is not an IP address
    fails its record (`on_error`).

    Example:
        geo: {type: geoip, field: clientip, database: GeoLite2-City.mmdb, target: geo}
    """

    type: Literal["geoip"]
    field: str
    """Column holding the IP address (IPv4 or IPv6)."""
    database: str
    """Path to the MaxMind `.mmdb` file (City, Country or ASN), relative to the pipeline file's folder; `geolite2-demo` names the 2018 GeoLite2 City database of the `demo` extra."""
    target: str = "geo"
    """Struct column to write; replaced if present."""
    fields: list[GeoField] | None = Field(default=None, min_length=1)
    """Fields of the struct, in order; default: every field the database type offers."""
    cache_size: int = Field(default=100_000, ge=0)
    """Distinct addresses remembered across batches."""

    @field_validator("fields")
    @classmethod
    def _no_repeats(cls, fields: list[str] | None) -> list[str] | None:
        if fields is not None and len(set(fields)) != len(fields):
            repeated = sorted({name for name in fields if fields.count(name) > 1})
            raise ValueError(f"fields listed more than once: {', '.join(repeated)}")
        return fields


@register_stage(GeoipConfig)
class GeoipStage:
    """Looks each distinct address up once (remembered across batches) and spreads the results with a take."""

    outputs: ClassVar[tuple[str, ...]] = ("dropped",)

    def __init__(self, config: GeoipConfig, ctx: NodeContext) -> None:
        self.config = config
        self.ctx = ctx
        path = _demo_database() if config.database == DEMO_DATABASE else ctx.resolve(config.database)
        if not path.is_file():
            raise ConfigError(f"file '{config.database}' not found (looked for {path})", field="database")
        try:
            self._reader = maxminddb.open_database(str(path), maxminddb.MODE_AUTO)  # the C reader over mmap when available: 5x MODE_MEMORY
        except (maxminddb.InvalidDatabaseError, ValueError, OSError) as exc:
            raise ConfigError(f"'{config.database}' is not a MaxMind database: {exc}", field="database") from None
        database_type = self._reader.metadata().database_type
        offered = next((names for word, names in _OFFERED if word in database_type), None)
        if offered is None:
            raise ConfigError(
                f"'{config.database}' is a {database_type!r} database; geoip reads City, Country, ASN and ISP databases",
                field="database",
            )
        for position, name in enumerate(config.fields or ()):
            if name not in offered:
                raise ConfigError(
                    f"a {database_type} database has no '{name}'; it offers: {', '.join(offered)}", field=f"fields.{position}"
                )
        self.fields: tuple[str, ...] = tuple(config.fields) if config.fields else offered
        self.struct_type = pa.struct([pa.field(name, _TYPES[name]) for name in self.fields])
        self._cache = DistinctCache(config.cache_size, self.struct_type)
        log.debug("%s: %s database %s, fields %s", ctx.node, database_type, path, self.fields)

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str] | None:
        """The input's fields and `target`."""
        return None if upstream is None else upstream | {self.config.target}

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The input's types, `target` the struct of the configured fields."""
        return {**upstream, self.config.target: self.struct_type}

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """The batch with `target` set; records whose address is not an IP address follow `on_error`."""
        if batch.num_rows == 0:
            return StageOutput(main=with_column(batch, self.config.target, pa.nulls(0, self.struct_type)))
        addresses = text_column(batch, self.config.field)
        if addresses is None:
            return StageOutput(main=with_column(batch, self.config.target, pa.nulls(batch.num_rows, self.struct_type)))
        found = self._cache.lookup(addresses, self._lookup)
        if found.errors is None:
            return StageOutput(main=with_column(batch, self.config.target, found.rows))
        failing = pc.is_valid(found.errors)
        kept = pc.invert(failing)
        good = with_column(batch.filter(kept), self.config.target, found.rows.filter(kept))
        errors = found.errors.filter(failing).to_pylist()
        return split_failures(good, batch.filter(failing), errors, self.ctx.node, self.config.on_error)

    def _lookup(self, value: str) -> Found:
        """One address's field values; None when it is not public or the database does not know it."""
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError:
            shown = value if len(value) <= 60 else value[:59] + "…"
            return Failure(f"geoip: {shown!r} is not an IP address")
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not address.is_global:
            return None
        record = self._reader.get(address)
        if not isinstance(record, dict):
            return None
        return tuple(_extract(record, name) for name in self.fields)


def _name(part: Any) -> Any:
    """The English name of a MaxMind record part (`{"names": {"en": …}}`), or None."""
    return part.get("names", {}).get("en") if isinstance(part, dict) else None


def _extract(record: dict[str, Any], name: str) -> Any:
    """Field `name` of a MaxMind City/Country/ASN record, or None when the record lacks it."""
    if name == "country_code":
        return record.get("country", {}).get("iso_code")
    if name == "country_name":
        return _name(record.get("country"))
    if name == "city":
        return _name(record.get("city"))
    if name == "region":
        subdivisions = record.get("subdivisions") or [None]
        return _name(subdivisions[0])
    if name in ("latitude", "longitude", "time_zone"):
        return record.get("location", {}).get(name)
    if name == "asn":
        return record.get("autonomous_system_number")
    return record.get("autonomous_system_organization")
