//! The fake Slack's listings, `reactions.get` (a message's reactions,
//! the bot's and people's), `conversations.history` (a channel's
//! messages, newest first, thread replies left out unless broadcast) and
//! `conversations.replies` (a thread, parent first), paged by cursor as
//! Slack documents: `limit` messages a page (100 when not given, 999 at
//! most), fewer when the fake is told to answer with fewer.

use super::*;

/// Messages a page when `limit` is not given, as Slack answers.
const DEFAULT_LIMIT: usize = 100;
/// The most a page holds, whatever `limit` asks.
const MAX_LIMIT: usize = 999;

/// `conversations.history` and `conversations.replies`, which take their
/// arguments in the query string.
pub(super) async fn web_api_read(
    State(slack): State<FakeSlack>,
    Path(method): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (response, latency) = {
        let mut inner = slack.lock();
        let latency = inner.latency;
        (read(&mut inner, &method, &query, &headers), latency)
    };
    tokio::time::sleep(latency).await;
    response
}

/// The answer to a reading method.
fn read(
    inner: &mut Inner,
    method: &str,
    query: &std::collections::HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let now = Instant::now();
    inner.requests.push(Request {
        at: now,
        method: method.to_owned(),
        body: json!(query),
        status: 200,
        error: None,
    });
    if let Some(answer) = misbehaving(inner, now) {
        return answer.into_response();
    }
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return slack_error("invalid_auth");
    }
    if let Some(answer) = directory::answer(&inner.directory, method, query) {
        return answer;
    }
    let channel = query.get("channel").cloned().unwrap_or_default();
    if method == "chat.getPermalink" {
        // As Slack answers: the workspace URL, the channel, `p` and the ts
        // without its dot.
        let ts = query.get("message_ts").cloned().unwrap_or_default();
        if message_at(inner, &channel, &ts).is_none() {
            return slack_error("message_not_found");
        }
        let permalink = format!(
            "https://acme.slack.com/archives/{channel}/p{}",
            ts.replace('.', "")
        );
        return axum::Json(json!({ "ok": true, "channel": channel, "permalink": permalink }))
            .into_response();
    }
    if method == "reactions.get" {
        return reactions(inner, &channel, query);
    }
    let with_metadata = query.get("include_all_metadata").map(String::as_str) == Some("true");
    let listed = |m: &Message| {
        let mut message = json!({ "type": "message", "ts": m.ts, "text": m.text });
        match &m.user {
            Some(user) => message["user"] = json!(user),
            None => {
                message["user"] = json!(BOT_USER);
                message["bot_id"] = json!("B0LABELWDN");
            }
        }
        if let Some(thread) = &m.thread_ts {
            message["thread_ts"] = json!(thread);
        }
        if with_metadata && !m.metadata.is_null() {
            message["metadata"] = m.metadata.clone();
        }
        message
    };
    let messages: Vec<Value> = match method {
        "conversations.history" => {
            let oldest: f64 = query
                .get("oldest")
                .and_then(|o| o.parse().ok())
                .unwrap_or(0.0);
            let mut found: Vec<Value> = inner
                .messages
                .iter()
                .filter(|m| m.channel == channel && (m.thread_ts.is_none() || m.broadcast))
                .filter(|m| m.posted_at.timestamp() as f64 >= oldest)
                .map(listed)
                .collect();
            found.reverse();
            found
        }
        "conversations.replies" => {
            let ts = query.get("ts").cloned().unwrap_or_default();
            if message_at(inner, &channel, &ts).is_none() {
                return slack_error("thread_not_found");
            }
            inner
                .messages
                .iter()
                .filter(|m| {
                    m.channel == channel
                        && (m.ts == ts || m.thread_ts.as_deref() == Some(ts.as_str()))
                })
                .map(listed)
                .collect()
        }
        _ => return slack_error("unknown_method"),
    };
    // `limit` as Slack reads it (100 if not given, 999 at most); fewer
    // when the fake is told to answer with fewer, as Slack may.
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(DEFAULT_LIMIT)
        .clamp(1, MAX_LIMIT);
    let page_size = inner.page_cap.map_or(limit, |cap| cap.min(limit));
    let from: usize = query
        .get("cursor")
        .and_then(|c| c.strip_prefix("bmV4dDo"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = messages
        .iter()
        .skip(from)
        .take(page_size)
        .cloned()
        .collect();
    let next = from + page.len();
    let more = next < messages.len();
    (
        StatusCode::OK,
        axum::Json(json!({
            "ok": true, "messages": page, "has_more": more,
            "response_metadata": { "next_cursor": if more { format!("bmV4dDo{next}") } else { String::new() } },
        })),
    )
        .into_response()
}

impl FakeSlack {
    /// `user` reacts with `name` on `message`, as a person in Slack would;
    /// `reactions.get` shows it (no event is sent).
    pub fn person_reacts(&self, message: &Message, name: &str, user: &str) {
        self.lock().people_reactions.push((
            message.channel.clone(),
            message.ts.clone(),
            name.to_owned(),
            user.to_owned(),
        ));
    }
}

/// The message posted at `ts` in `channel`, if there is one.
fn message_at<'a>(inner: &'a Inner, channel: &str, ts: &str) -> Option<&'a Message> {
    inner
        .messages
        .iter()
        .find(|m| m.channel == channel && m.ts == ts)
}

/// `reactions.get`: the message's reactions as Slack documents them, each
/// with its users and count; the bot's own (`reactions.add`) included.
fn reactions(
    inner: &Inner,
    channel: &str,
    query: &std::collections::HashMap<String, String>,
) -> Response {
    let ts = query.get("timestamp").cloned().unwrap_or_default();
    let Some(message) = message_at(inner, channel, &ts) else {
        return slack_error("message_not_found");
    };
    let mut by_name: Vec<(String, Vec<String>)> = message
        .reactions
        .iter()
        .map(|name| (name.clone(), vec![BOT_USER.to_owned()]))
        .collect();
    for (_, _, name, user) in inner
        .people_reactions
        .iter()
        .filter(|(c, t, _, _)| c == channel && *t == ts)
    {
        match by_name.iter_mut().find(|(n, _)| n == name) {
            Some((_, users)) if !users.contains(user) => users.push(user.clone()),
            Some(_) => {}
            None => by_name.push((name.clone(), vec![user.clone()])),
        }
    }
    let mut answer = json!({ "type": "message", "ts": message.ts, "text": message.text });
    if !by_name.is_empty() {
        answer["reactions"] = by_name
            .iter()
            .map(|(name, users)| json!({ "name": name, "users": users, "count": users.len() }))
            .collect();
    }
    axum::Json(json!({ "ok": true, "type": "message", "channel": channel, "message": answer }))
        .into_response()
}
