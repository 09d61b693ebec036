"""The `window` stage: per-group aggregates over tumbling, sliding or session windows, closed by a watermark.

`config` holds the YAML model, `expressions` parses the `aggregate:` entries, `aggregates` turns a batch into
mergeable partials (one pyarrow group_by per batch), `sketches` wraps the DataSketches behind the approximate
aggregates, `columns` reads fields, times and group keys, `watermark` tracks source partitions' progress,
`state` holds windows and decides lateness and closing, and `stage` ties it together and registers `window`.
"""

from loglake.operators.window.config import SessionWindow, SlidingWindow, WindowConfig
from loglake.operators.window.stage import WindowStage
from loglake.operators.window.state import WindowState

__all__ = ["WindowConfig", "SlidingWindow", "SessionWindow", "WindowStage", "WindowState"]
