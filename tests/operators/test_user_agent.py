"""The `user_agent` stage, built from YAML through the real spec loader, on real agents from the Apache log."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from loglake.operators.distinct_cache import DistinctCache
from loglake.operators.user_agent import USER_AGENT_TYPE
from tests.support import APACHE_LOG, batch_of, build_stage

CHROME_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36"
FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:27.0) Gecko/20100101 Firefox/27.0"
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 7_0_4 like Mac OS X) AppleWebKit/537.51.1 (KHTML, like Gecko) "
    "Version/7.0 Mobile/11B554a Safari/9537.53"
)
IPAD_SAFARI = (
    "Mozilla/5.0 (iPad; CPU OS 7_0_4 like Mac OS X) AppleWebKit/537.51.1 (KHTML, like Gecko) "
    "Version/7.0 Mobile/11B554a Safari/9537.53"
)
ANDROID_CHROME = (
    "Mozilla/5.0 (Linux; Android 4.4.2; Nexus 4 Build/KOT49H) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/32.0.1700.99 Mobile Safari/537.36"
)
GOOGLEBOT_MOBILE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 6_0 like Mac OS X) AppleWebKit/536.26 (KHTML, like Gecko) Version/6.0 "
    "Mobile/10A5376e Safari/8536.25 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)
BINGBOT = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
"""Real agents from ../shared/data/apache_access_10k.log."""

FIELDS = [field.name for field in USER_AGENT_TYPE]


@pytest.mark.parametrize(
    "agent, expected",
    [
        (CHROME_MAC, ("Chrome", "32.0.1700", "Mac OS X", "10.9.1", "Mac", "Apple", "Mac", False, False, True, False)),
        (FIREFOX_WINDOWS, ("Firefox", "27.0", "Windows", "7", "Other", None, None, False, False, True, False)),
        (IPHONE_SAFARI, ("Mobile Safari", "7.0", "iOS", "7.0.4", "iPhone", "Apple", "iPhone", True, False, False, False)),
        (IPAD_SAFARI, ("Mobile Safari", "7.0", "iOS", "7.0.4", "iPad", "Apple", "iPad", False, True, False, False)),
        (ANDROID_CHROME, ("Chrome Mobile", "32.0.1700", "Android", "4.4.2", "Nexus 4", "LG", "Nexus 4", True, False, False, False)),
        (GOOGLEBOT_MOBILE, ("Googlebot", "2.1", "iOS", "6.0", "Spider", "Spider", "Smartphone", True, False, False, True)),
        (BINGBOT, ("bingbot", "2.0", "Other", None, "Spider", "Spider", "Desktop", False, False, False, True)),
    ],
    ids=["chrome-mac", "firefox-windows", "iphone-safari", "ipad-safari", "android-chrome", "googlebot-mobile", "bingbot"],
)
def test_user_agent_fields(agent: str, expected: tuple[Any, ...]) -> None:
    stage = build_stage("{type: user_agent, field: agent, target: ua}")
    out = stage.process(batch_of(agent=[agent]))
    assert out.main.column("ua").to_pylist() == [dict(zip(FIELDS, expected))]
    assert out.extra == {} and out.discarded == 0


@pytest.mark.parametrize(
    "agent, is_bot",
    [(CHROME_MAC, False), (IPHONE_SAFARI, False), (GOOGLEBOT_MOBILE, True), (BINGBOT, True)],
    ids=["chrome", "iphone", "googlebot", "bingbot"],
)
def test_user_agent_flags_bots(agent: str, is_bot: bool) -> None:
    stage = build_stage("{type: user_agent, field: agent, target: ua}")
    out = stage.process(batch_of(agent=[agent]))
    assert out.main.column("ua").field("is_bot").to_pylist() == [is_bot]


def test_struct_layout_and_default_target() -> None:
    out = build_stage("{type: user_agent, field: agent}").process(batch_of(clientip=["83.149.9.216"], agent=[CHROME_MAC]))
    assert out.main.schema.names == ["clientip", "agent", "user_agent"]
    assert out.main.schema.field("user_agent").type == USER_AGENT_TYPE
    assert FIELDS == ["browser_family", "browser_version", "os_family", "os_version", "device_family", "device_brand",
                      "device_model", "is_mobile", "is_tablet", "is_pc", "is_bot"]


@pytest.mark.parametrize(
    "agents",
    [[""], ["-"], ["   "], [None], pa.nulls(1, pa.string())],
    ids=["empty", "dash", "blank", "null", "all-null-column"],
)
def test_agent_that_says_nothing_gives_a_null_struct(agents: Any) -> None:
    out = build_stage("{type: user_agent, field: agent, target: ua}").process(batch_of(agent=agents))
    assert out.main.column("ua").to_pylist() == [None]
    assert out.extra == {}


def test_missing_field_gives_null_structs() -> None:
    out = build_stage("{type: user_agent, field: agent, target: ua}").process(batch_of(message=["a", "b"]))
    assert out.main.column("ua").to_pylist() == [None, None]


def test_target_is_replaced_in_place() -> None:
    batch = batch_of(ua=["old", "old"], agent=[BINGBOT, None])
    out = build_stage("{type: user_agent, field: agent, target: ua}").process(batch)
    assert out.main.schema.names == ["ua", "agent"]
    assert [row and row["browser_family"] for row in out.main.column("ua").to_pylist()] == ["bingbot", None]


@pytest.mark.parametrize("cache_size", [0, 1, 2, 10_000], ids=["no-cache", "cache-1", "cache-2", "default"])
def test_results_do_not_depend_on_the_cache(cache_size: int) -> None:
    agents = [CHROME_MAC, BINGBOT, CHROME_MAC, None, IPHONE_SAFARI, "", BINGBOT, FIREFOX_WINDOWS]
    reference = build_stage("{type: user_agent, field: agent, cache_size: 0}").process(batch_of(agent=agents)).main
    stage = build_stage(f"{{type: user_agent, field: agent, cache_size: {cache_size}}}")
    for start in range(0, len(agents), 3):  # several batches through one stage, so the cache carries over
        chunk = batch_of(agent=agents[start:start + 3])
        assert stage.process(chunk).main.to_pylist() == reference.slice(start, 3).to_pylist()
    assert stage.process(batch_of(agent=agents)).main.equals(reference)


@pytest.mark.parametrize("size", [10_000, 300, 0], ids=["all-fit", "starts-over", "no-cache"])
def test_the_cache_computes_each_agent_once_while_it_fits(size: int) -> None:
    lines = APACHE_LOG.read_text(encoding="utf-8").splitlines()
    agents = pa.array([line.rsplit('"', 2)[-2] if line.count('"') >= 6 else None for line in lines])
    distinct = len(set(agents.drop_null().to_pylist()))
    batches = [agents.slice(start, 1000) for start in range(0, len(agents), 1000)]
    per_batch = 3 * sum(len(set(batch.drop_null().to_pylist())) for batch in batches)
    seen: list[str] = []

    def parse(agent: str) -> tuple[Any, ...]:
        seen.append(agent)
        return (agent.lower(),)

    cache = DistinctCache(size, pa.struct([("lower", pa.string())]))
    for _ in range(3):  # the log three times, in batches of 1,000 lines
        for chunk in batches:
            found = cache.lookup(chunk, parse)
            assert found.errors is None
            assert found.rows.field("lower").to_pylist() == [None if a is None else a.lower() for a in chunk.to_pylist()]
    assert len(set(seen)) == distinct > 500
    if size == 0:  # nothing remembered: each batch computes each of its agents once
        assert len(seen) == per_batch
    elif size < distinct:  # more agents than fit: some are computed again after the cache starts over
        assert distinct < len(seen) < per_batch
    else:
        assert len(seen) == distinct
    assert len(cache) <= size


def test_dictionary_encoded_agents_are_parsed() -> None:
    agents = pa.array([GOOGLEBOT_MOBILE, CHROME_MAC, GOOGLEBOT_MOBILE]).dictionary_encode()
    out = build_stage("{type: user_agent, field: agent, target: ua}").process(pa.RecordBatch.from_arrays([agents], ["agent"]))
    assert out.main.column("ua").field("is_bot").to_pylist() == [True, False, True]


def test_empty_batch_gets_the_struct_column() -> None:
    out = build_stage("{type: user_agent, field: agent, target: ua}").process(batch_of(agent=[]))
    assert out.main.num_rows == 0
    assert out.main.schema.field("ua").type == USER_AGENT_TYPE
