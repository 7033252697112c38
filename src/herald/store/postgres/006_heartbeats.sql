-- /api/health proves the store can commit, not only answer a read: each API
-- process writes its heartbeat here (a disk that is full or read-only fails it).
CREATE TABLE heartbeats (
    instance text PRIMARY KEY,
    at       double precision NOT NULL
);
