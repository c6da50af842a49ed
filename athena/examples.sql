-- Example Athena queries over lakehose tables. Partitions are registered by
-- lakehose as objects land, so no MSCK REPAIR TABLE or crawler is needed.
-- Filter on the partition keys (year, month, day, hour, vendor_id) so Athena
-- reads only the objects it needs.

-- Trips and revenue per hour and vendor on one day.
SELECT hour, vendor_id, count(*) AS trips, round(sum(total_amount), 2) AS revenue
FROM lakehose.taxi_trips
WHERE year = '2024' AND month = '03' AND day = '01'
GROUP BY hour, vendor_id
ORDER BY hour, vendor_id;

-- Timestamps are real timestamps (UTC), whatever format the producer sent.
SELECT event_id, tpep_pickup_datetime, tpep_dropoff_datetime,
       date_diff('minute', tpep_pickup_datetime, tpep_dropoff_datetime) AS minutes
FROM lakehose.taxi_trips
WHERE year = '2024' AND month = '03' AND day = '02' AND hour = '08'
LIMIT 20;

-- Masked fields: rider.email is a keyed hash, so riders can be counted and
-- joined without anyone seeing the address.
SELECT rider.email AS rider_hash, count(*) AS trips
FROM lakehose.taxi_trips
WHERE year = '2024' AND month = '03'
GROUP BY rider.email
ORDER BY trips DESC
LIMIT 10;

-- Nested lists stay lists.
SELECT tag, count(*) AS trips
FROM lakehose.taxi_trips CROSS JOIN UNNEST(tags) AS t(tag)
WHERE year = '2024' AND month = '03'
GROUP BY tag;

-- Which source each row came from.
SELECT source, count(*) FROM lakehose.taxi_trips WHERE year = '2024' GROUP BY source;

-- Clickstream: experiment exposure by platform.
SELECT platform_key, e.name, e.variant, count(*) AS clicks
FROM lakehose.app_clicks CROSS JOIN UNNEST(experiments) AS x(e)
WHERE year = '2024' AND month = '03'
GROUP BY platform_key, e.name, e.variant;
