//! What the rooms' SQL shares: multi-row parameter lists that suit each
//! backend, lookups of many keys through an index, and how firings and
//! issues are bound.

use super::*;

/// `($1, $2), ($3, $4)`: bind parameters for `rows` rows of `columns`
/// values, in order. SQLite gets anonymous `?` parameters: sqlx looks each
/// named one up by number in a list SQLite scans from the start, which
/// makes binding a statement of many `$n` quadratic.
pub(super) fn parameters(backend: Backend, rows: usize, columns: usize) -> String {
    let mut text = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        if row > 0 {
            text.push_str(", ");
        }
        text.push('(');
        for column in 0..columns {
            if column > 0 {
                text.push_str(", ");
            }
            match backend {
                Backend::Sqlite => text.push('?'),
                Backend::Postgres => text.push_str(&format!("${}", row * columns + column + 1)),
            }
        }
        text.push(')');
    }
    text
}

/// The columns that name an issue, in every table keyed by issue.
pub(super) const ISSUE_KEY: &[&str] = &["project", "iid"];

/// `(…) AS v JOIN {table} t ON t.{key1} = v.column1 AND …`: the rows of
/// `table` whose `keys` are among the rows of `values` (from
/// [`parameters`]), each found through the table's index. A row-value
/// `IN (VALUES …)` is not: SQLite matches it on the first column only
/// and reads every row of the project.
pub(super) fn join_values(table: &str, keys: &[&str], values: &str) -> String {
    let columns: Vec<String> = (1..=keys.len()).map(|i| format!("column{i}")).collect();
    let on: Vec<String> = keys
        .iter()
        .zip(&columns)
        .map(|(key, column)| format!("t.{key} = v.{column}"))
        .collect();
    format!(
        "(SELECT DISTINCT {} FROM (VALUES {values}) AS l) AS v JOIN {table} t ON {}",
        columns.join(", "),
        on.join(" AND ")
    )
}

/// A statement whose only dynamic part is its list of `$n` parameters
/// (from [`parameters`]): no value is ever formatted into SQL.
pub(super) fn multi_row<'q>(sql: String) -> SqlQuery<'q> {
    sqlx::query(sqlx::AssertSqlSafe(sql))
}

/// A query with a statement type spelled once.
pub(super) type SqlQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>;

/// Binds a firing's key in the column order every table uses:
/// project, iid, policy, step, cycle, occurrence.
pub(super) fn bind_firing<'q>(
    query: SqlQuery<'q>,
    project: &'q str,
    iid: i64,
    policy: &'q str,
    firing: &'q Firing,
) -> SqlQuery<'q> {
    query
        .bind(project)
        .bind(iid)
        .bind(policy)
        .bind(firing.step.0.as_str())
        .bind(i64::from(firing.cycle))
        .bind(i64::from(firing.occurrence))
}

/// Binds each issue's key (project, iid), in order.
pub(super) fn bind_issues<'q>(mut query: SqlQuery<'q>, issues: &[IssueRef]) -> SqlQuery<'q> {
    for issue in issues {
        query = query.bind(issue.project.0.clone()).bind(issue.iid.0 as i64);
    }
    query
}

/// An issue's primary key columns.
pub(super) fn issue_key(commit: &IssueCommit) -> (&str, i64) {
    let reference = &commit.facts.reference;
    (reference.project.0.as_str(), reference.iid.0 as i64)
}

/// Rows per statement: far below SQLite's and PostgreSQL's limits on bound
/// values even for the widest table.
pub(super) const ROWS_PER_STATEMENT: usize = 200;

/// A thread's key: project, iid, policy, cycle, channel.
pub(super) type ThreadKey = (String, i64, String, i64, String);

/// A firing's identity in the ledger and the outbox.
pub(super) type FiringKey = (String, i64, String, String, i64, i64);
