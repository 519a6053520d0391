//! The schema, as numbered steps applied in order and recorded in
//! `labelwarden_migrations`, so an existing database is brought forward and
//! a new one is built from nothing. Timestamps are integer milliseconds
//! since the epoch (UTC); JSON columns are text. No step is ever edited
//! once released: changes come as new steps.

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub statements: &'static [&'static str],
}

/// Where each backend records the migrations applied: SQLite's intake is a
/// file of its own; on PostgreSQL intake shares the database, so its
/// migrations are recorded apart from the main ones.
pub const MAIN_TABLE: &str = "labelwarden_migrations";
pub const INTAKE_TABLE: &str = "labelwarden_intake_migrations";

/// PostgreSQL's intake: the same table in the shared database, its `seq`
/// from a sequence. Inserts take a lock on the table so that `seq` order
/// is commit order, which the intake cursor relies on.
pub const POSTGRES_INTAKE_MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "deliveries",
    statements: &["CREATE TABLE deliveries (
            seq BIGSERIAL PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            received_at BIGINT NOT NULL,
            payload TEXT NOT NULL
        )"],
}];

/// The intake database: webhook deliveries as they arrive, in a file of
/// their own so that acknowledging a webhook never waits for the enforcer.
/// `seq` is the order of arrival; processing is tracked by the main
/// database's `intake_cursor`.
pub const INTAKE_MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "deliveries",
    statements: &["CREATE TABLE deliveries (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            key TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            received_at BIGINT NOT NULL,
            payload TEXT NOT NULL
        )"],
}];

/// The main database: issues, clocks, ledger, outbox, notifier threads,
/// and how far intake has been processed.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial schema",
        statements: &[
            "CREATE TABLE intake_cursor (
            id BIGINT PRIMARY KEY CHECK (id = 1),
            seq BIGINT NOT NULL
        )",
            "CREATE TABLE rejected_deliveries (
            key TEXT PRIMARY KEY,
            seq BIGINT NOT NULL,
            error TEXT NOT NULL,
            rejected_at BIGINT NOT NULL
        )",
            "CREATE TABLE issues (
            project TEXT NOT NULL,
            iid BIGINT NOT NULL,
            facts TEXT NOT NULL,
            title TEXT NOT NULL,
            url TEXT NOT NULL,
            updated_at BIGINT NOT NULL,
            PRIMARY KEY (project, iid)
        )",
            "CREATE TABLE issue_events (
            project TEXT NOT NULL,
            iid BIGINT NOT NULL,
            at BIGINT NOT NULL,
            kind TEXT NOT NULL,
            label TEXT NOT NULL,
            PRIMARY KEY (project, iid, at, kind, label)
        )",
            "CREATE TABLE clocks (
            project TEXT NOT NULL,
            iid BIGINT NOT NULL,
            policy TEXT NOT NULL,
            status TEXT NOT NULL,
            next_wake BIGINT,
            updated_at BIGINT NOT NULL,
            PRIMARY KEY (project, iid, policy)
        )",
            "CREATE INDEX clocks_next_wake ON clocks (next_wake)",
            "CREATE TABLE ledger (
            project TEXT NOT NULL,
            iid BIGINT NOT NULL,
            policy TEXT NOT NULL,
            step TEXT NOT NULL,
            cycle BIGINT NOT NULL,
            occurrence BIGINT NOT NULL,
            fired_at BIGINT NOT NULL,
            PRIMARY KEY (project, iid, policy, step, cycle, occurrence)
        )",
            "CREATE TABLE outbox (
            project TEXT NOT NULL,
            iid BIGINT NOT NULL,
            policy TEXT NOT NULL,
            step TEXT NOT NULL,
            cycle BIGINT NOT NULL,
            occurrence BIGINT NOT NULL,
            created_at BIGINT NOT NULL,
            position BIGINT NOT NULL,
            notice TEXT NOT NULL,
            attempts BIGINT NOT NULL DEFAULT 0,
            next_attempt_at BIGINT,
            last_error TEXT,
            sent_at BIGINT,
            PRIMARY KEY (project, iid, policy, step, cycle, occurrence)
        )",
            "CREATE INDEX outbox_pending ON outbox (sent_at, next_attempt_at)",
        ],
    },
    Migration {
        version: 2,
        name: "notifier threads",
        statements: &[
            // The policy file's channel name a notice goes to (NULL: none).
            // Rows written before this step have none and start a new thread.
            "ALTER TABLE outbox ADD COLUMN channel TEXT",
            // The thread each clock cycle has in each channel: later steps
            // of the cycle reply in it.
            "CREATE TABLE threads (
            project TEXT NOT NULL,
            iid BIGINT NOT NULL,
            policy TEXT NOT NULL,
            cycle BIGINT NOT NULL,
            channel TEXT NOT NULL,
            channel_id TEXT NOT NULL,
            ts TEXT NOT NULL,
            updated_at BIGINT NOT NULL,
            PRIMARY KEY (project, iid, policy, cycle, channel)
        )",
        ],
    },
    Migration {
        version: 3,
        name: "claims and leases for several replicas",
        statements: &[
            // An outbox row being sent is claimed until then; another
            // replica takes it over only after the claim ran out.
            "ALTER TABLE outbox ADD COLUMN claimed_until BIGINT",
            // Work one replica at a time does (the enforcer, reconcile),
            // held by `owner` until `until_at` and renewed while it works.
            "CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            until_at BIGINT NOT NULL
        )",
        ],
    },
    Migration {
        version: 4,
        name: "outbox claims counted",
        statements: &[
            // Claims since the entry was last recorded: more than one means
            // a claimant vanished mid-send and the notice may be out already.
            "ALTER TABLE outbox ADD COLUMN claims BIGINT NOT NULL DEFAULT 0",
        ],
    },
    Migration {
        version: 5,
        name: "slack events and acknowledgements",
        statements: &[
            // Slack retries an event under the same id: seen ones are skipped.
            "CREATE TABLE slack_events (
            event_id TEXT PRIMARY KEY,
            received_at BIGINT NOT NULL
        )",
            // Who first acknowledged a clock cycle's alert (the ack
            // reaction on its thread), and when.
            "CREATE TABLE acknowledgements (
            project TEXT NOT NULL,
            iid BIGINT NOT NULL,
            policy TEXT NOT NULL,
            cycle BIGINT NOT NULL,
            by_user TEXT NOT NULL,
            at BIGINT NOT NULL,
            PRIMARY KEY (project, iid, policy, cycle)
        )",
        ],
    },
    Migration {
        version: 6,
        name: "an acknowledgement per person",
        statements: &[
            // Everyone who put the ack reaction on a cycle's alert: when
            // the first takes theirs back, the others' still stand.
            "CREATE TABLE acknowledgements_by_person (
            project TEXT NOT NULL,
            iid BIGINT NOT NULL,
            policy TEXT NOT NULL,
            cycle BIGINT NOT NULL,
            by_user TEXT NOT NULL,
            at BIGINT NOT NULL,
            PRIMARY KEY (project, iid, policy, cycle, by_user)
        )",
            "INSERT INTO acknowledgements_by_person (project, iid, policy, cycle, by_user, at)
             SELECT project, iid, policy, cycle, by_user, at FROM acknowledgements",
            "DROP TABLE acknowledgements",
            "ALTER TABLE acknowledgements_by_person RENAME TO acknowledgements",
        ],
    },
    Migration {
        version: 7,
        name: "slack events handled from the store",
        statements: &[
            // The event itself (JSON), kept until it was acted on, so a
            // restart or a failing GitLab loses no reaction or reply.
            "ALTER TABLE slack_events ADD COLUMN event TEXT",
            "ALTER TABLE slack_events ADD COLUMN handled_at BIGINT",
            "ALTER TABLE slack_events ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE slack_events ADD COLUMN next_attempt_at BIGINT",
            "ALTER TABLE slack_events ADD COLUMN claimed_until BIGINT",
            "ALTER TABLE slack_events ADD COLUMN error TEXT",
            // Events stored before this version were acted on when received.
            "UPDATE slack_events SET handled_at = received_at",
            "CREATE INDEX slack_events_due ON slack_events (handled_at, next_attempt_at)",
        ],
    },
    Migration {
        version: 8,
        name: "projects followed by id",
        statements: &[
            // Where each project lives, as the newest delivery naming its
            // id said: one naming the id under another path is a rename or
            // transfer, and the project's rows move to the new path. Rows
            // from before this step are keyed by the paths of their time,
            // which the first delivery naming each id records.
            "CREATE TABLE projects (
            project_id BIGINT PRIMARY KEY,
            path TEXT NOT NULL,
            seen_at BIGINT NOT NULL
        )",
        ],
    },
    Migration {
        version: 9,
        name: "issues followed by id across moves",
        statements: &[
            // The global id, and the id of the issue a close moved
            // it to: a move is a new issue in another project, and the
            // clock goes there.
            "ALTER TABLE issues ADD COLUMN issue_id BIGINT",
            "ALTER TABLE issues ADD COLUMN moved_to_id BIGINT",
            "CREATE INDEX issues_issue_id ON issues (issue_id)",
            "CREATE INDEX issues_moved_to_id ON issues (moved_to_id)",
        ],
    },
    Migration {
        version: 10,
        name: "duplicates",
        statements: &[
            // The id of the issue a close marked this one a duplicate of.
            "ALTER TABLE issues ADD COLUMN duplicated_to_id BIGINT",
            // A clock start carried to an issue from one closed as its
            // duplicate: its first cycle counts from the earlier start.
            "CREATE TABLE carried_starts (
            project TEXT NOT NULL,
            iid BIGINT NOT NULL,
            policy TEXT NOT NULL,
            started_at BIGINT NOT NULL,
            PRIMARY KEY (project, iid, policy)
        )",
        ],
    },
    Migration {
        version: 11,
        name: "duplicates as the API names them",
        statements: &[
            // The canonical issue as the API's link names it (reconcile
            // reads no global id for it): its project id and iid.
            "ALTER TABLE issues ADD COLUMN duplicate_of_project BIGINT",
            "ALTER TABLE issues ADD COLUMN duplicate_of_iid BIGINT",
        ],
    },
    Migration {
        version: 12,
        name: "heartbeats and downtimes",
        statements: &[
            // The last beat of whoever held the enforcer lease.
            "CREATE TABLE heartbeats (
            name TEXT PRIMARY KEY,
            at BIGINT NOT NULL
        )",
            // When nobody ran the enforcer: from the last beat before a
            // start or takeover to that start.
            "CREATE TABLE downtimes (
            from_at BIGINT PRIMARY KEY,
            to_at BIGINT NOT NULL
        )",
        ],
    },
    Migration {
        version: 13,
        name: "digests",
        statements: &[
            // A channel's storm window for one policy and kind, and how far
            // its messages got.
            "CREATE TABLE digests (
            kind TEXT NOT NULL,
            channel TEXT NOT NULL,
            policy TEXT NOT NULL,
            opened_at BIGINT NOT NULL,
            closes_at BIGINT NOT NULL,
            summarised BIGINT NOT NULL DEFAULT 0,
            batch_from BIGINT NOT NULL DEFAULT 0,
            batch_through BIGINT NOT NULL DEFAULT 0,
            batch_posted BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (kind, channel, policy, opened_at)
        )",
            // The issues a window admitted, in order: with the notice the
            // digest lists, or none for those that kept their own alert.
            "CREATE TABLE digest_members (
            kind TEXT NOT NULL,
            channel TEXT NOT NULL,
            policy TEXT NOT NULL,
            opened_at BIGINT NOT NULL,
            seq BIGINT NOT NULL,
            project TEXT NOT NULL,
            iid BIGINT NOT NULL,
            cycle BIGINT NOT NULL,
            notice TEXT,
            PRIMARY KEY (kind, channel, policy, opened_at, seq)
        )",
            // Later steps of listed members, said together in the digest's
            // thread (one message per kind of step falling due together).
            "CREATE TABLE digest_notices (
            kind TEXT NOT NULL,
            channel TEXT NOT NULL,
            policy TEXT NOT NULL,
            opened_at BIGINT NOT NULL,
            project TEXT NOT NULL,
            iid BIGINT NOT NULL,
            cycle BIGINT NOT NULL,
            step TEXT NOT NULL,
            occurrence BIGINT NOT NULL,
            joined_at BIGINT NOT NULL,
            notice TEXT NOT NULL,
            posted_at BIGINT,
            planned TEXT,
            PRIMARY KEY (kind, channel, policy, opened_at, project, iid, cycle, step, occurrence)
        )",
        ],
    },
    Migration {
        version: 14,
        name: "digest members by issue",
        // Every pass asks which digests list its issues: by index, not by
        // reading every member of every storm.
        statements: &["CREATE INDEX digest_members_issue ON digest_members (project, iid)"],
    },
    Migration {
        version: 15,
        name: "outbox in queue order",
        // Claims walk the unsent rows in the order they were queued and
        // stop at the first due heads of their threads, instead of sorting
        // every unsent row each time (a backlog made each claim slower).
        statements: &[
            "DROP INDEX outbox_pending",
            "CREATE INDEX outbox_pending ON outbox (sent_at, created_at, position)",
        ],
    },
    Migration {
        version: 16,
        name: "failed notices resendable",
        // A notice refused for good gets a number people can type
        // (`outbox resend --id 7`) from one counter all replicas share,
        // and the time it failed (a later send to its channel means the
        // channel works again); `resent_at` marks it resent, so that its
        // message says it is late and why.
        statements: &[
            "ALTER TABLE outbox ADD COLUMN id BIGINT",
            "ALTER TABLE outbox ADD COLUMN failed_at BIGINT",
            "ALTER TABLE outbox ADD COLUMN resent_at BIGINT",
            "CREATE UNIQUE INDEX outbox_id ON outbox (id)",
            "CREATE INDEX outbox_channel_sent ON outbox (channel, sent_at)",
            "CREATE TABLE outbox_ids (
            one BIGINT PRIMARY KEY CHECK (one = 1),
            last BIGINT NOT NULL
        )",
            "INSERT INTO outbox_ids (one, last) VALUES (1, 0)",
            "UPDATE outbox SET failed_at = created_at WHERE sent_at IS NULL AND next_attempt_at IS NULL",
        ],
    },
    Migration {
        version: 17,
        name: "mutes",
        // A mute silences a policy, a channel or a project until a time:
        // notices falling due meanwhile are recorded (the outbox row is
        // marked muted and done), and summarised once when it ends, by
        // whichever replica claims the summary first.
        statements: &[
            "CREATE TABLE mutes (
            id BIGINT PRIMARY KEY,
            scope TEXT NOT NULL,
            target TEXT NOT NULL,
            until_at BIGINT NOT NULL,
            reason TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            summarised_at BIGINT
        )",
            "CREATE TABLE mute_ids (
            one BIGINT PRIMARY KEY CHECK (one = 1),
            last BIGINT NOT NULL
        )",
            "INSERT INTO mute_ids (one, last) VALUES (1, 0)",
            "ALTER TABLE outbox ADD COLUMN muted_by BIGINT",
            "CREATE INDEX outbox_muted_by ON outbox (muted_by)",
        ],
    },
    Migration {
        version: 18,
        name: "maintenance windows",
        // A maintenance window in the policy files opens a mute as each of
        // its occurrences begins; the occurrence's key makes it one mute
        // however many replicas see it begin.
        statements: &[
            "ALTER TABLE mutes ADD COLUMN origin TEXT",
            "CREATE UNIQUE INDEX mutes_origin ON mutes (origin)",
        ],
    },
    Migration {
        version: 19,
        name: "fencing tokens",
        // A process that froze past its lease or claim must not write or
        // send as if it still held it (see `store::fence`): the lease's
        // epoch grows at each takeover, and an outbox claim carries a
        // token of its own until it is recorded or claimed again.
        statements: &[
            "ALTER TABLE leases ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE outbox ADD COLUMN claim_token TEXT",
        ],
    },
    Migration {
        version: 20,
        name: "digest members keyed by member",
        // A member was keyed by its place in the window: two windows that
        // disagreed on a place (two enforcers for a moment) kept one of
        // two issues and dropped the other without a word. Keyed by the
        // issue's cycle, each is kept once; places may then tie, and ties
        // are read in issue order.
        statements: &[
            "CREATE TABLE digest_members_by_member (
            kind TEXT NOT NULL,
            channel TEXT NOT NULL,
            policy TEXT NOT NULL,
            opened_at BIGINT NOT NULL,
            seq BIGINT NOT NULL,
            project TEXT NOT NULL,
            iid BIGINT NOT NULL,
            cycle BIGINT NOT NULL,
            notice TEXT,
            PRIMARY KEY (kind, channel, policy, opened_at, project, iid, cycle)
        )",
            "INSERT INTO digest_members_by_member
                (kind, channel, policy, opened_at, seq, project, iid, cycle, notice)
             SELECT kind, channel, policy, opened_at, seq, project, iid, cycle, notice
             FROM digest_members WHERE true ORDER BY seq
             ON CONFLICT DO NOTHING",
            "DROP TABLE digest_members",
            "ALTER TABLE digest_members_by_member RENAME TO digest_members",
            "CREATE INDEX digest_members_issue ON digest_members (project, iid)",
            "CREATE INDEX digest_members_place ON digest_members (kind, channel, policy, opened_at, seq)",
        ],
    },
    Migration {
        version: 21,
        name: "slack event claim tokens",
        // A Slack event is acted on under a claim, as an outbox notice is
        // sent: its token is confirmed before each request and required
        // to record what became of it.
        statements: &["ALTER TABLE slack_events ADD COLUMN claim_token TEXT"],
    },
    Migration {
        version: 22,
        name: "issues know whether they are open",
        // Retention forgets a closed issue whose clocks only hold (a
        // label-stopped policy holds its clock while the issue is
        // closed): it must tell closed issues without reading every
        // issue's facts. Filled from the facts' own JSON.
        statements: &[
            "ALTER TABLE issues ADD COLUMN open BIGINT",
            "UPDATE issues SET open = CASE WHEN facts LIKE '%\"state\":\"closed\"%' THEN 0 ELSE 1 END",
        ],
    },
    Migration {
        version: 23,
        name: "messages raised in Slack",
        // A person's message raised (a reaction) in a channel that opens
        // issues: claimed before the issue is created (iid NULL until
        // then), so a second reaction, a Slack retry or another replica
        // creates nothing more. The message is the alert thread
        // in that channel.
        statements: &[
            "CREATE TABLE raised (
            channel_id TEXT NOT NULL,
            ts TEXT NOT NULL,
            channel TEXT NOT NULL,
            project TEXT NOT NULL,
            iid BIGINT,
            claimed_at BIGINT NOT NULL,
            PRIMARY KEY (channel_id, ts)
        )",
            "CREATE INDEX raised_issue ON raised (project, iid)",
        ],
    },
];
