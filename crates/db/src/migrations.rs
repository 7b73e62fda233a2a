//! The schema of `quai.db`, as one ordered list of steps.
//!
//! Append new steps at the end; never edit or reorder a step that has been
//! released: a database's `user_version` counts the steps applied to it.

/// One schema change, applied in its own transaction.
pub struct Migration {
    /// Says what the step is for, in error messages.
    pub name: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "images",
        sql: IMAGES_V1,
    },
    Migration {
        name: "containers, volumes and events",
        sql: CONTAINERS_V1,
    },
    Migration {
        name: "networks, endpoints and published ports",
        sql: NETWORKS_V1,
    },
];

/// Images (crates/image). An image is identified by the digest of its config
/// (docker's image ID). Its layers are unpacked once per chain id and shared.
const IMAGES_V1: &str = "
CREATE TABLE layers (
    chain_id    TEXT PRIMARY KEY,
    diff_id     TEXT NOT NULL,
    parent      TEXT REFERENCES layers(chain_id),
    size        INTEGER NOT NULL            -- bytes of the unpacked content
);

CREATE TABLE images (
    id              TEXT PRIMARY KEY,       -- sha256:<config digest>
    manifest_digest TEXT,                   -- manifest stored with the image, if any
    created         TEXT,                   -- the config's created time (RFC 3339)
    size            INTEGER NOT NULL,       -- sum of the layers' unpacked sizes
    parent          TEXT,                   -- image committed from (quai commit/build)
    added_at        INTEGER NOT NULL        -- unix seconds when loaded/imported here
);

CREATE TABLE image_layers (
    image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,           -- 0 = bottom layer
    chain_id    TEXT NOT NULL REFERENCES layers(chain_id),
    blob        TEXT NOT NULL,              -- digest of the stored layer blob
    media_type  TEXT NOT NULL,
    PRIMARY KEY (image_id, position)
);
CREATE INDEX image_layers_by_chain ON image_layers(chain_id);

-- Tags: a normalized reference (docker.io/library/busybox:latest) names one image.
CREATE TABLE image_tags (
    reference   TEXT PRIMARY KEY,
    image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    tagged_at   INTEGER NOT NULL
);
CREATE INDEX image_tags_by_image ON image_tags(image_id);

-- Repo digests: repository@manifest-digest names one image (RepoDigests).
CREATE TABLE image_digests (
    repository  TEXT NOT NULL,
    digest      TEXT NOT NULL,
    image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    PRIMARY KEY (repository, digest)
);
CREATE INDEX image_digests_by_image ON image_digests(image_id);

-- Facts about the image store itself (e.g. that hello-world was seeded).
CREATE TABLE image_meta (
    key     TEXT PRIMARY KEY,
    value   TEXT NOT NULL
);
";

/// Containers, named volumes and the event log (crates/engine). A
/// container's row is the truth about it: its directories are created
/// idempotently when it starts and removed before the row is.
const CONTAINERS_V1: &str = "
CREATE TABLE containers (
    id              TEXT PRIMARY KEY,       -- 64 hex digits
    name            TEXT NOT NULL UNIQUE,   -- without docker's leading '/'
    image_id        TEXT NOT NULL REFERENCES images(id),
    created         INTEGER NOT NULL,       -- unix nanoseconds
    config          TEXT NOT NULL,          -- JSON: docker's Config + HostConfig and what create resolved
    status          TEXT NOT NULL,          -- created|running|restarting|paused|exited|removing|dead
    pid             INTEGER NOT NULL DEFAULT 0,
    monitor_pid     INTEGER NOT NULL DEFAULT 0,
    monitor_start   INTEGER NOT NULL DEFAULT 0, -- start time (clock ticks) of the monitor: pid reuse check
    exit_code       INTEGER NOT NULL DEFAULT 0,
    error           TEXT NOT NULL DEFAULT '',
    started_at      INTEGER NOT NULL DEFAULT 0,
    finished_at     INTEGER NOT NULL DEFAULT 0,
    oom_killed      INTEGER NOT NULL DEFAULT 0,
    restart_count   INTEGER NOT NULL DEFAULT 0,
    manually_stopped INTEGER NOT NULL DEFAULT 0,
    health          TEXT                    -- JSON: docker's State.Health
);
CREATE INDEX containers_by_image ON containers(image_id);

CREATE TABLE volumes (
    name        TEXT PRIMARY KEY,
    driver      TEXT NOT NULL,
    created     INTEGER NOT NULL,           -- unix nanoseconds
    labels      TEXT NOT NULL,              -- JSON object
    options     TEXT NOT NULL,              -- JSON object
    anonymous   INTEGER NOT NULL DEFAULT 0,
    status      TEXT NOT NULL DEFAULT 'ready' -- ready|removing
);

-- Which container mounts which volume where (a volume in use cannot be removed).
CREATE TABLE container_volumes (
    container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    volume       TEXT NOT NULL REFERENCES volumes(name),
    destination  TEXT NOT NULL,
    PRIMARY KEY (container_id, destination)
);
CREATE INDEX container_volumes_by_volume ON container_volumes(volume);

-- docker events: one row per event, in commit order.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    time        INTEGER NOT NULL,           -- unix nanoseconds
    type        TEXT NOT NULL,              -- container|image|volume|network
    action      TEXT NOT NULL,              -- create, start, die, destroy, ...
    actor       TEXT NOT NULL,              -- id (or name of a volume)
    attributes  TEXT NOT NULL               -- JSON object
);
CREATE INDEX events_by_time ON events(time);
";

/// Networks (crates/net through the engine). A network's row holds the
/// complete definition quai-net returned; a container's attachment to a
/// network is a row of `container_networks` from `create` (or `network
/// connect`) on, and holds its lease (addresses, the installed endpoint)
/// only while the container runs: the unique indexes make two containers
/// holding one address impossible, whatever races. Published ports are
/// rows of `container_ports` while the container runs.
const NETWORKS_V1: &str = "
CREATE TABLE networks (
    id          TEXT PRIMARY KEY,           -- 64 hex digits
    name        TEXT NOT NULL UNIQUE,
    created     INTEGER NOT NULL,           -- unix nanoseconds
    definition  TEXT NOT NULL               -- JSON: quai_net::Network
);

CREATE TABLE container_networks (
    container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    network_id   TEXT NOT NULL REFERENCES networks(id),
    position     INTEGER NOT NULL,          -- eth<position> inside the container
    config       TEXT NOT NULL,             -- JSON: docker's EndpointSettings as asked (aliases, --ip, --mac-address)
    ipv4         TEXT,                      -- lease, while running
    ipv6         TEXT,
    endpoint     TEXT,                      -- JSON: quai_net::Endpoint, while running
    PRIMARY KEY (container_id, network_id)
);
CREATE INDEX container_networks_by_network ON container_networks(network_id);
CREATE UNIQUE INDEX leases4 ON container_networks(network_id, ipv4);
CREATE UNIQUE INDEX leases6 ON container_networks(network_id, ipv6);

CREATE TABLE container_ports (
    container_id   TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    host_ip        TEXT NOT NULL,           -- '' = every address
    host_port      INTEGER NOT NULL,
    container_port INTEGER NOT NULL,
    protocol       TEXT NOT NULL,           -- tcp|udp|sctp
    PRIMARY KEY (host_ip, host_port, protocol)
);
CREATE INDEX container_ports_by_container ON container_ports(container_id);
";
