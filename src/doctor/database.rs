//! The database: reachable, and migrated as far as this build migrates.
//! Read only: a doctor run never creates a file or applies a migration.

use super::Line;
use crate::store::sql::{SchemaVersion, schema_version, without_password};

pub async fn check(url: &str) -> Line {
    let name = without_password(url);
    match schema_version(url).await {
        Ok(None) => Line::ok(
            "database",
            format!("{name} does not exist yet: serve creates it at start"),
        ),
        Ok(Some(SchemaVersion { current, latest })) if current == latest => Line::ok(
            "database",
            format!("{name} is reachable and migrated (version {current})"),
        ),
        Ok(Some(SchemaVersion { current, latest })) if current < latest => Line::ok(
            "database",
            format!(
                "{name} is reachable, at version {current}: serve migrates it to {latest} at start"
            ),
        ),
        Ok(Some(SchemaVersion { current, latest })) => Line::problem(
            "database",
            format!(
                "{name} is at version {current}, newer than this build knows ({latest}): a newer labelwarden migrated it"
            ),
            "run the labelwarden version that migrated it, or a newer one",
        ),
        Err(e) => Line::problem(
            "database",
            format!("{name} cannot be read: {e}"),
            "check LABELWARDEN_DATABASE_URL (or --database): host, port, user and password, and that the server runs",
        ),
    }
}
