//! The database schema, created and upgraded by flow itself.
//!
//! Each entry of [`MIGRATIONS`] takes the schema one version up; the version reached is kept in
//! `flow_meta`. Upgrades run in one transaction under an advisory lock, so processes starting
//! together upgrade once, and a failed upgrade leaves the previous version whole. A database
//! whose version is newer than this binary knows is refused, not written to.

use postgres::Client;

/// Advisory lock key under which the schema is created or upgraded.
const MIGRATION_LOCK: i64 = 0x464C_4F57_0000_0001;

/// Text keys compare byte by byte (`COLLATE "C"`), the order sled keeps and prefix scans need.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: runs, node records, outputs in chunks, small keyed state, and the fencing epoch of
    // the process executing each run.
    r#"
    CREATE TABLE flow_runs (
        id text COLLATE "C" PRIMARY KEY,
        status text NOT NULL,
        record bytea NOT NULL
    );
    CREATE TABLE flow_nodes (
        run_id text COLLATE "C" NOT NULL,
        node_id text COLLATE "C" NOT NULL,
        record bytea NOT NULL,
        PRIMARY KEY (run_id, node_id)
    );
    CREATE TABLE flow_outputs (
        run_id text COLLATE "C" NOT NULL,
        node_id text COLLATE "C" NOT NULL,
        chunk integer NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (run_id, node_id, chunk)
    );
    CREATE TABLE flow_run_owners (
        run_id text COLLATE "C" PRIMARY KEY,
        epoch bigint NOT NULL
    );
    CREATE TABLE flow_kv (
        key text COLLATE "C" PRIMARY KEY,
        value bytea NOT NULL
    );
    "#,
    // 2: nodes handed to `flow worker` processes, claimed under a lease.
    r#"
    CREATE TABLE flow_tasks (
        id bigserial PRIMARY KEY,
        run_id text COLLATE "C" NOT NULL,
        node_id text COLLATE "C" NOT NULL,
        spec bytea NOT NULL,
        labels text[] NOT NULL DEFAULT '{}',
        state text NOT NULL,
        worker text,
        claim bigint NOT NULL DEFAULT 0,
        lease_until timestamptz,
        result bytea,
        error text,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX flow_tasks_open ON flow_tasks (id) WHERE state IN ('ready', 'claimed');
    "#,
    // 3: the synced histories of source nodes (manifest with cursor, and segments in chunks),
    // shared by every host.
    r#"
    CREATE TABLE flow_histories (
        name text COLLATE "C" PRIMARY KEY,
        version bigint NOT NULL,
        manifest bytea NOT NULL
    );
    CREATE TABLE flow_history_segments (
        name text COLLATE "C" NOT NULL,
        segment text COLLATE "C" NOT NULL,
        chunk integer NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (name, segment, chunk)
    );
    "#,
];

/// The schema version this binary reads and writes.
pub(super) fn supported() -> u32 {
    MIGRATIONS.len() as u32
}

/// What opening found.
pub(super) enum Schema {
    Ready { upgraded_from: Option<u32> },
    Newer(u32),
}

/// Creates or upgrades the schema to [`supported`].
pub(super) fn migrate(client: &mut Client) -> Result<Schema, postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS flow_meta (name text PRIMARY KEY, value text NOT NULL)",
    )?;
    let found: u32 = tx
        .query_opt(
            "SELECT value FROM flow_meta WHERE name = 'schema_version'",
            &[],
        )?
        .and_then(|row| row.get::<_, String>(0).parse().ok())
        .unwrap_or(0);
    if found > supported() {
        return Ok(Schema::Newer(found));
    }
    if found == supported() {
        return Ok(Schema::Ready {
            upgraded_from: None,
        });
    }
    for sql in &MIGRATIONS[found as usize..] {
        tx.batch_execute(sql)?;
    }
    tx.execute(
        "INSERT INTO flow_meta (name, value) VALUES ('schema_version', $1)
         ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
        &[&supported().to_string()],
    )?;
    tx.commit()?;
    Ok(Schema::Ready {
        upgraded_from: Some(found),
    })
}
