-- Delivery workers alive: each worker process writes its row (instance and process id)
-- every HERALD_SWEEP_INTERVAL, and /api/metrics counts the recent ones (herald_workers).
CREATE TABLE workers (
    name    text PRIMARY KEY,
    seen_at double precision NOT NULL
);
