-- Queries over the nginx-access lake. Run one with:
--   loglake query -p examples/nginx/pipeline.yaml "<query>"

-- Top countries by requests.
SELECT geo.country_name AS country, count(*) AS requests
FROM access WHERE geo IS NOT NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 5;

-- Bots against humans: requests, distinct clients, bytes.
SELECT CASE WHEN ua.is_bot THEN 'bot' ELSE 'human' END AS who, count(*) AS requests,
       count(DISTINCT clientip) AS clients, sum(bytes) AS bytes
FROM access GROUP BY 1 ORDER BY 1;

-- 5xx responses per minute (only the minutes that had any).
SELECT time_bucket(INTERVAL 1 minute, timestamp) AS minute, count(*) AS errors
FROM access WHERE status >= 500 GROUP BY 1 ORDER BY 1;
