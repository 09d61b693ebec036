"""The `grok` stage: Logstash-style grok patterns on pygrok's pattern library, compiled once, matched per distinct line.

`library` reads pattern files, `compiler` expands and compiles patterns, `matcher` turns matches into Arrow
columns, `stage` holds the config and the batch machinery the regex and preset stages share.
"""

from loglake.parsers.grok.stage import CaptureConfig, CaptureStage, GrokConfig, GrokStage, grok_matcher

__all__ = ["CaptureConfig", "CaptureStage", "GrokConfig", "GrokStage", "grok_matcher"]
