"""The `geoip` stage on small exact MaxMind databases built in the test session, through the real spec loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from loglake.schemas.errors import SpecError
from tests.operators.mmdb_fixtures import write_asn_db, write_city_db
from tests.support import batch_of, build_stage

CITY_FIELDS = ["country_code", "country_name", "city", "region", "latitude", "longitude", "time_zone"]
MOSCOW = {"country_code": "RU", "country_name": "Russia", "city": "Moscow", "region": "Moscow",
          "latitude": 55.7527, "longitude": 37.6172, "time_zone": "Europe/Moscow"}
GOOGLE_V4 = {"country_code": "US", "country_name": "United States", "city": "Mountain View", "region": "California",
             "latitude": 37.386, "longitude": -122.0838, "time_zone": "America/Los_Angeles"}
GOOGLE_V6 = {**GOOGLE_V4, "latitude": 37.4043, "longitude": -122.0748}
GB_ONLY = {"country_code": "GB", "country_name": "United Kingdom", "city": None, "region": None,
           "latitude": None, "longitude": None, "time_zone": None}


@pytest.fixture(scope="module")
def dbs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding city.mmdb, asn.mmdb and a corrupt broken.mmdb."""
    folder = tmp_path_factory.mktemp("geoip")
    write_city_db(folder / "city.mmdb")
    write_asn_db(folder / "asn.mmdb")
    (folder / "broken.mmdb").write_bytes(b"this is not a MaxMind database\n" * 4)
    return folder


def _geoip(dbs: Path, options: str = "", database: str = "city.mmdb", name: str = "geo") -> Any:
    return build_stage(f"{{type: geoip, field: clientip, database: {database}{options}}}", name=name, base_dir=dbs)


@pytest.mark.parametrize(
    "address, expected",
    [
        ("83.149.9.216", MOSCOW),
        ("66.249.73.135", GOOGLE_V4),
        ("2001:4860:4860::8888", GOOGLE_V6),
        ("::ffff:83.149.9.216", MOSCOW),
        (" 83.149.9.216 ", MOSCOW),
        ("2.125.160.216", GB_ONLY),
        ("10.1.2.3", None),
        ("192.168.0.1", None),
        ("127.0.0.1", None),
        ("::1", None),
        ("240.0.0.1", None),
        ("fe80::1", None),
        ("1.1.1.1", None),
        ("2a00:1450::1", None),
        (None, None),
    ],
    ids=["ipv4-city", "ipv4-googlebot", "ipv6", "ipv4-mapped-ipv6", "surrounding-spaces", "country-only",
         "private-in-db", "private", "loopback", "loopback-v6", "reserved", "link-local-v6", "unknown", "unknown-v6", "null"],
)
def test_city_lookup(dbs: Path, address: str | None, expected: dict[str, Any] | None) -> None:
    out = _geoip(dbs).process(batch_of(clientip=[address]))
    assert out.main.column("geo").to_pylist() == [expected]
    assert out.extra == {} and out.discarded == 0


def test_struct_layout_follows_the_database_type(dbs: Path) -> None:
    city = _geoip(dbs).process(batch_of(clientip=["83.149.9.216"])).main
    assert city.schema.field("geo").type == pa.struct(
        [("country_code", pa.string()), ("country_name", pa.string()), ("city", pa.string()), ("region", pa.string()),
         ("latitude", pa.float64()), ("longitude", pa.float64()), ("time_zone", pa.string())]
    )
    asn = _geoip(dbs, ", target: net", database="asn.mmdb").process(batch_of(clientip=["66.249.73.135", "83.149.9.216", "1.1.1.1"])).main
    assert asn.schema.names == ["clientip", "net"]
    assert asn.column("net").to_pylist() == [
        {"asn": 15169, "organization": "Google LLC"}, {"asn": 12389, "organization": "Rostelecom"}, None
    ]
    assert asn.schema.field("net").type == pa.struct([("asn", pa.int64()), ("organization", pa.string())])


def test_chosen_fields_in_their_order(dbs: Path) -> None:
    out = _geoip(dbs, ", fields: [time_zone, country_code, latitude]").process(batch_of(clientip=["2001:4860::1", "127.0.0.1"]))
    assert out.main.column("geo").to_pylist() == [
        {"time_zone": "America/Los_Angeles", "country_code": "US", "latitude": 37.4043}, None
    ]


def test_target_is_replaced_in_place_and_missing_field_gives_null(dbs: Path) -> None:
    stage = _geoip(dbs)
    out = stage.process(batch_of(geo=["old"], clientip=["83.149.9.216"]))
    assert out.main.schema.names == ["geo", "clientip"] and out.main.column("geo").to_pylist() == [MOSCOW]
    missing = stage.process(batch_of(message=["no address here", "nor here"]))
    assert missing.main.column("geo").to_pylist() == [None, None]


@pytest.mark.parametrize("cache_size", [0, 1, 2, 100_000], ids=["no-cache", "cache-1", "cache-2", "default"])
def test_results_do_not_depend_on_the_cache(dbs: Path, cache_size: int) -> None:
    addresses = ["83.149.9.216", "66.249.73.135", "83.149.9.216", None, "10.0.0.1", "2001:4860::1", "66.249.73.135",
                 "1.1.1.1", "83.149.9.216"]
    reference = _geoip(dbs, ", cache_size: 0").process(batch_of(clientip=addresses)).main
    assert reference.column("geo").to_pylist() == [MOSCOW, GOOGLE_V4, MOSCOW, None, None, GOOGLE_V6, GOOGLE_V4, None, MOSCOW]
    stage = _geoip(dbs, f", cache_size: {cache_size}")
    for start in range(0, len(addresses), 2):  # several batches through one stage, so the cache carries over
        chunk = batch_of(clientip=addresses[start:start + 2])
        assert stage.process(chunk).main.to_pylist() == reference.slice(start, 2).to_pylist()
    assert stage.process(batch_of(clientip=addresses)).main.equals(reference)


ADDRESSES = batch_of(line=[1, 2, 3, 4, 5], clientip=["83.149.9.216", "999.1.1.1", "10.0.0.1", "not-an-ip", "999.1.1.1"])


@pytest.mark.parametrize(
    "on_error, main_lines, dropped_lines, discarded",
    [("route", [1, 3], [2, 4, 5], 0), ("keep", [1, 3, 2, 4, 5], None, 0), ("discard", [1, 3], None, 3)],
    ids=["route", "keep", "discard"],
)
def test_value_that_is_not_an_address_follows_on_error(
    dbs: Path, on_error: str, main_lines: list[int], dropped_lines: list[int] | None, discarded: int
) -> None:
    out = _geoip(dbs, f", on_error: {on_error}", name="enrich").process(ADDRESSES)
    assert out.main.column("line").to_pylist() == main_lines
    assert out.main.column("geo").to_pylist()[:2] == [MOSCOW, None]
    assert out.discarded == discarded
    expected_errors = ["geoip: '999.1.1.1' is not an IP address", "geoip: 'not-an-ip' is not an IP address",
                       "geoip: '999.1.1.1' is not an IP address"]
    if dropped_lines is None:
        assert "dropped" not in out.extra
    else:
        dropped = out.extra["dropped"]
        assert dropped.column("line").to_pylist() == dropped_lines
        assert dropped.column("_error").to_pylist() == expected_errors
        assert dropped.column("_error_node").to_pylist() == ["enrich"] * 3
    if on_error == "keep":
        assert out.main.column("_error").to_pylist() == [None, None, *expected_errors]
        assert out.main.column("geo").to_pylist()[2:] == [None, None, None]


@pytest.mark.parametrize(
    "database, options, path, message",
    [
        ("nowhere.mmdb", "", ("database",), "file 'nowhere.mmdb' not found"),
        ("broken.mmdb", "", ("database",), "'broken.mmdb' is not a MaxMind database"),
        ("asn.mmdb", ", fields: [asn, city]", ("fields", 1), "a GeoLite2-ASN database has no 'city'; it offers: asn, organization"),
        ("city.mmdb", ", fields: [organization]", ("fields", 0), "a GeoLite2-City database has no 'organization'"),
        ("city.mmdb", ", fields: [continent]", ("fields", 0), "Input should be 'country_code'"),
        ("city.mmdb", ", fields: [city, city]", ("fields",), "fields listed more than once: city"),
        ("city.mmdb", ", cache_size: -1", ("cache_size",), "greater than or equal to 0"),
    ],
    ids=["missing-database", "corrupt-database", "asn-has-no-city", "city-has-no-asn", "unknown-field", "repeated-field",
         "negative-cache"],
)
def test_unusable_config_is_a_located_spec_error(
    dbs: Path, database: str, options: str, path: tuple[str | int, ...], message: str
) -> None:
    with pytest.raises(SpecError) as caught:
        _geoip(dbs, options, database=database, name="enrich")
    [issue] = caught.value.issues
    assert issue.path == path
    assert issue.node == "enrich"
    assert message in issue.message


def test_empty_batch_gets_the_struct_column(dbs: Path) -> None:
    out = _geoip(dbs).process(batch_of(clientip=pa.array([], pa.string())))
    assert out.main.num_rows == 0
    assert out.main.schema.field("geo").type.names == CITY_FIELDS
