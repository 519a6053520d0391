//! The clocks the store holds, for people to look at (`labelwarden
//! clocks`, the admin API): which issue, which policy, what status.

use super::*;

/// Most clocks listed at once.
pub(super) const CLOCKS_LIMIT: i64 = 5_000;

/// Stored clocks, by issue then policy, filtered by policy and status
/// kind ([`crate::clock::SlaStatus::kind`]) when given.
pub(super) async fn stored_clocks(
    store: &SqlStore,
    policy: Option<&str>,
    status: Option<&str>,
) -> Result<Vec<(IssueRef, PolicyName, String)>, StoreError> {
    let mut conditions = vec!["1 = 1".to_owned()];
    let mut values = Vec::new();
    for (column, value) in [("policy", policy), ("status", status)] {
        if let Some(value) = value {
            values.push(value.to_owned());
            conditions.push(format!("{column} = ${}", values.len()));
        }
    }
    let sql = format!(
        "SELECT project, iid, policy, status FROM clocks WHERE {}
         ORDER BY project, iid, policy LIMIT {CLOCKS_LIMIT}",
        conditions.join(" AND ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for value in &values {
        query = query.bind(value.as_str());
    }
    let rows = query.fetch_all(&store.readers).await?;
    rows.iter()
        .map(|row| {
            Ok((
                issue_from(row)?,
                PolicyName(row.try_get("policy")?),
                row.try_get("status")?,
            ))
        })
        .collect()
}
