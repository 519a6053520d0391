//! The fake GitLab's offset pagination: `X-Page`, `X-Per-Page`,
//! `X-Total`, `X-Total-Pages`, `X-Next-Page`, `X-Prev-Page` and `Link`, as
//! GitLab documents them, totals left out above 10 000 results.

use super::*;

/// GitLab leaves `X-Total` and `X-Total-Pages` out of listings with more
/// results than this.
pub(super) const GITLAB_COUNTS_UP_TO: usize = 10_000;

/// One page of `items` as GitLab's offset pagination serves it.
pub(super) fn page(uri: &Uri, query: &HashMap<String, String>, items: Vec<Value>) -> Response {
    page_counted(uri, query, items, GITLAB_COUNTS_UP_TO, |item| item)
}

/// A page as [`page`] serves it, leaving the totals out when there are
/// more than `counted_up_to` items; only the page's items are turned into
/// JSON.
pub(super) fn page_counted<T>(
    uri: &Uri,
    query: &HashMap<String, String>,
    items: Vec<T>,
    counted_up_to: usize,
    to_json: impl Fn(T) -> Value,
) -> Response {
    let per_page: usize = query
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let page: usize = query
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let total = items.len();
    let pages = total.div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(to_json)
        .collect();
    let mut response = (StatusCode::OK, axum::Json(Value::Array(slice))).into_response();
    let headers = response.headers_mut();
    let link_to = |n: usize| {
        let mut pairs: BTreeMap<&str, String> =
            query.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        pairs.insert("page", n.to_string());
        pairs.insert("per_page", per_page.to_string());
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "<http://gitlab.example.com{}?{}>",
            uri.path(),
            query.join("&")
        )
    };
    let mut links = Vec::new();
    if page < pages {
        headers.insert("x-next-page", HeaderValue::from(page + 1));
        links.push(format!("{}; rel=\"next\"", link_to(page + 1)));
    } else {
        headers.insert("x-next-page", HeaderValue::from_static(""));
    }
    if page > 1 {
        headers.insert("x-prev-page", HeaderValue::from(page - 1));
        links.push(format!("{}; rel=\"prev\"", link_to(page - 1)));
    }
    links.push(format!("{}; rel=\"first\"", link_to(1)));
    let counted = total <= counted_up_to;
    if counted {
        links.push(format!("{}; rel=\"last\"", link_to(pages)));
    }
    headers.insert("x-page", HeaderValue::from(page));
    headers.insert("x-per-page", HeaderValue::from(per_page));
    if counted {
        headers.insert("x-total", HeaderValue::from(total));
        headers.insert("x-total-pages", HeaderValue::from(pages));
    }
    headers.insert("link", HeaderValue::from_str(&links.join(", ")).unwrap());
    response
}
