"""Regenerate data/*.jsonl: JSON application logs derived from real Apache access logs.

The sample turns each request of ../../../shared/data/apache_access_10k.log (10,000 real requests from May
2015, from the public elastic/examples repository, Apache License 2.0) into the JSON line a web service
would log for it, and mixes in the kind of lines real services also write: a stack-trace fragment and
a truncated line. Deterministic: run it again and the files are byte-identical.

    python examples/app-json/make_data.py
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parents[2] / "shared" / "data" / "apache_access_10k.log"
LINES = 4000
COMBINED = re.compile(
    r'^(?P<ip>\S+) \S+ \S+ \[(?P<ts>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+)[^"]*" (?P<status>\d{3}) (?P<bytes>\d+|-) '
    r'"[^"]*" "(?P<agent>[^"]*)"'
)


def _stable(text: str, modulo: int) -> int:
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) % modulo


def _record(match: re.Match[str]) -> dict[str, object]:
    status = int(match["status"])
    size = 0 if match["bytes"] == "-" else int(match["bytes"])
    path = match["path"]
    service = "blog" if path.startswith("/blog") else "static" if re.search(r"\.(png|jpg|gif|css|js|ico)$", path) else "web"
    level = "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO"
    when = datetime.strptime(match["ts"], "%d/%b/%Y:%H:%M:%S %z")
    duration = round(3 + size / 4000 + _stable(match["ip"] + path, 400) * 0.37, 1)
    return {
        "ts": when.isoformat().replace("+00:00", "Z"),
        "level": level,
        "service": service,
        "host": f"web-{_stable(match['ip'], 3) + 1}",
        "msg": f"{match['method']} {path} {status}",
        "http": {"method": match["method"], "path": path, "status": status, "bytes": size},
        "client_ip": match["ip"],
        "user_agent": match["agent"],
        "duration_ms": duration,
    }


def main() -> None:
    records = []
    for line in SOURCE.read_text(encoding="utf-8").splitlines()[:LINES]:
        match = COMBINED.match(line)
        if match:
            records.append(json.dumps(_record(match), separators=(",", ":")))
    # What real services also write: a stack-trace fragment and a line cut off mid-write.
    records.insert(1234, "Traceback (most recent call last):")
    records.insert(2345, records[2345][:57])
    half = len(records) // 2
    (HERE / "data").mkdir(exist_ok=True)
    (HERE / "data" / "app-1.jsonl").write_text("\n".join(records[:half]) + "\n", encoding="utf-8")
    (HERE / "data" / "app-2.jsonl").write_text("\n".join(records[half:]) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
