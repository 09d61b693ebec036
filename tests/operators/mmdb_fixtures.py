"""Small, exact MaxMind databases built with mmdb-writer, so geoip expectations are known to the last digit.

Networks are real ones from ../shared/data/apache_access_10k.log (83.149.9.216, 66.249.73.135), a London
block, an IPv6 network, a country-only network, and a private network the stage must ignore anyway.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter, MmdbU32
from netaddr import IPSet

__all__ = ["CITY_NETWORKS", "ASN_NETWORKS", "write_city_db", "write_asn_db"]


def _city(code: str, country: str, city: str | None, region: str | None, lat: float, lon: float, zone: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "country": {"iso_code": code, "names": {"en": country}},
        "location": {"latitude": lat, "longitude": lon, "time_zone": zone},
    }
    if city is not None:
        record["city"] = {"names": {"en": city}}
    if region is not None:
        record["subdivisions"] = [{"iso_code": region[:3].upper(), "names": {"en": region}}]
    return record


CITY_NETWORKS: dict[str, dict[str, Any]] = {
    "83.149.0.0/17": _city("RU", "Russia", "Moscow", "Moscow", 55.7527, 37.6172, "Europe/Moscow"),
    "66.249.64.0/19": _city("US", "United States", "Mountain View", "California", 37.386, -122.0838, "America/Los_Angeles"),
    "81.2.69.0/24": _city("GB", "United Kingdom", "London", "England", 51.5142, -0.0931, "Europe/London"),
    "2.125.160.0/19": {"country": {"iso_code": "GB", "names": {"en": "United Kingdom"}}},
    "2001:4860::/32": _city("US", "United States", "Mountain View", "California", 37.4043, -122.0748, "America/Los_Angeles"),
    "10.0.0.0/8": _city("ZZ", "Private", "Nowhere", None, 0.0, 0.0, "UTC"),
}
"""What the City-like test database holds."""

ASN_NETWORKS: dict[str, dict[str, Any]] = {
    "83.149.0.0/17": {"autonomous_system_number": MmdbU32(12389), "autonomous_system_organization": "Rostelecom"},
    "66.249.64.0/19": {"autonomous_system_number": MmdbU32(15169), "autonomous_system_organization": "Google LLC"},
    "2001:4860::/32": {"autonomous_system_number": MmdbU32(15169), "autonomous_system_organization": "Google LLC"},
}
"""What the ASN-like test database holds."""


def _write(path: Path, database_type: str, networks: dict[str, dict[str, Any]]) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=database_type, languages=["en"])
    for network, record in networks.items():
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return path


def write_city_db(path: Path) -> Path:
    """A `GeoLite2-City`-typed database of `CITY_NETWORKS` at `path`."""
    return _write(path, "GeoLite2-City", CITY_NETWORKS)


def write_asn_db(path: Path) -> Path:
    """A `GeoLite2-ASN`-typed database of `ASN_NETWORKS` at `path`."""
    return _write(path, "GeoLite2-ASN", ASN_NETWORKS)
