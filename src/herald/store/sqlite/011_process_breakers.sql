-- Breaker states by process: the instance name plus a boot id, so a process
-- restarted under the same HERALD_INSTANCE starts with none of the old one's
-- open breakers. Readers show a process's rows only while its heartbeat (in
-- `heartbeats`, whose `instance` column now holds the process id) is fresh;
-- a stopping process deletes its rows, and workers prune those of dead ones.
-- `provider_state` is no longer read: it stays for processes of the previous
-- release during a rolling upgrade.
CREATE TABLE breakers (
    process    TEXT NOT NULL,
    instance   TEXT NOT NULL,
    provider   TEXT NOT NULL,
    state      TEXT NOT NULL,
    failures   INTEGER NOT NULL,
    changed_at REAL NOT NULL,
    PRIMARY KEY (process, provider)
);
