-- Queries over the app-json lake. Run one with:
--   loglake query -p examples/app-json/pipeline.yaml "<query>"

-- How many records per level?
SELECT level, count(*) AS records FROM app GROUP BY level ORDER BY records DESC;

-- Requests and errors per hour (partition columns `date` and `hour` come from the folder names).
SELECT date, hour, count(*) AS requests, count(*) FILTER (WHERE status >= 400) AS errors
FROM app GROUP BY ALL ORDER BY date, hour;

-- The slowest paths: p95 latency with at least 20 requests.
SELECT path, count(*) AS requests, round(quantile_cont(duration_ms, 0.95), 1) AS p95_ms
FROM app GROUP BY path HAVING count(*) >= 20 ORDER BY p95_ms DESC LIMIT 5;

-- Which hosts served the 4xx/5xx responses?
SELECT host, service, count(*) AS failures FROM app WHERE status >= 400 GROUP BY ALL ORDER BY failures DESC LIMIT 5;

-- The lines that could not be parsed, with the reason and where they came from.
SELECT source, _line, _error, left(message, 60) AS line FROM dead_letter;
