//! Reading an offset-paginated listing with its pages in flight together.
//!
//! The `gitlab` crate's `paged(…, Pagination::All)` reads a listing one
//! page after another: 1 000 issues at 100 a page are ten round trips in a
//! row before the last history can be asked for. GitLab says how many
//! pages there are on the first one (`X-Total-Pages`), so the rest can be
//! asked for at once; the client's adaptive limit decides how many are
//! really in flight. GitLab leaves the totals out when a listing has more
//! than 10 000 results; then the pages are read in turn, following
//! `X-Next-Page` until it is empty.
//!
//! Each page goes through the crate's own query (its error reading stays
//! the one everywhere else uses); a thin client wrapper keeps the answer's
//! headers for the page count.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use gitlab::api::endpoint_prelude::{Endpoint, Method, QueryParams};
use gitlab::api::{ApiError, AsyncClient, AsyncQuery, BodyError, RestClient, UrlBase};
use http::request::Builder as RequestBuilder;
use http::{HeaderMap, Response};
use serde::de::DeserializeOwned;
use url::Url;

use super::client::{GitLabClient, TransportError};

/// Items a page: GitLab's most.
pub const PER_PAGE: u64 = 100;

/// What the first page says of the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rest {
    /// `X-Total-Pages`: this many pages in all.
    Counted(u64),
    /// No totals (over 10 000 results): the next page's number, if any.
    Next(Option<u64>),
}

impl Rest {
    fn from_headers(headers: &HeaderMap) -> Self {
        let number =
            |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        match number("x-total-pages") {
            Some(pages) => Rest::Counted(pages),
            None => Rest::Next(number("x-next-page")),
        }
    }
}

/// The pages of the listing `endpoint` names, each as it comes, in the
/// order GitLab lists them; an error ends the stream.
pub fn stream<'a, E, T>(client: &'a GitLabClient, endpoint: E) -> Pages<'a, T>
where
    E: Endpoint + Send + Sync + 'a,
    T: DeserializeOwned + Send + 'static,
{
    let endpoint = Arc::new(endpoint);
    let first = one::<E, T>(client, Arc::clone(&endpoint), 1);
    futures_util::stream::once(first)
        .flat_map(move |first| match first {
            Err(error) => futures_util::stream::iter([Err(error)]).boxed(),
            Ok((items, rest)) => {
                let full = items.len() as u64 == PER_PAGE;
                futures_util::stream::iter([Ok(items)])
                    .chain(rest_of(client, Arc::clone(&endpoint), rest, full))
                    .boxed()
            }
        })
        .boxed()
}

/// A listing's pages as they come.
pub type Pages<'a, T> = BoxStream<'a, Result<Vec<T>, ApiError<TransportError>>>;

/// The pages after the first: all at once when counted, else in turn.
fn rest_of<'a, E, T>(
    client: &'a GitLabClient,
    endpoint: Arc<E>,
    rest: Rest,
    first_full: bool,
) -> Pages<'a, T>
where
    E: Endpoint + Send + Sync + 'a,
    T: DeserializeOwned + Send + 'static,
{
    match rest {
        Rest::Counted(pages) => futures_util::stream::iter(2..=pages)
            .map(move |number| one::<E, T>(client, Arc::clone(&endpoint), number))
            // The client bounds what is really in flight.
            .buffered(64)
            .map(|page| page.map(|(items, _)| items))
            .boxed(),
        Rest::Next(next) => {
            let next = next.filter(|n| first_full && *n > 1);
            futures_util::stream::unfold(next, move |next| {
                let endpoint = Arc::clone(&endpoint);
                async move {
                    let number = next?;
                    Some(match one::<E, T>(client, endpoint, number).await {
                        Err(error) => (Err(error), None),
                        Ok((items, rest)) => {
                            let full = items.len() as u64 == PER_PAGE;
                            let next = match rest {
                                Rest::Next(Some(n)) if full && n > number => Some(n),
                                _ => None,
                            };
                            (Ok(items), next)
                        }
                    })
                }
            })
            .boxed()
        }
    }
}

/// Every item of the listing `endpoint` names, in the order GitLab lists
/// them.
pub async fn all<'a, E, T>(
    client: &'a GitLabClient,
    endpoint: E,
) -> Result<Vec<T>, ApiError<TransportError>>
where
    E: Endpoint + Send + Sync + 'a,
    T: DeserializeOwned + Send + 'static,
{
    let mut pages = stream(client, endpoint);
    let mut items = Vec::new();
    while let Some(page) = pages.next().await {
        items.extend(page?);
    }
    Ok(items)
}

/// Page `number` of `endpoint`, with what its headers say of the rest.
async fn one<E, T>(
    client: &GitLabClient,
    endpoint: Arc<E>,
    number: u64,
) -> Result<(Vec<T>, Rest), ApiError<TransportError>>
where
    E: Endpoint + Sync,
    T: DeserializeOwned + Send + 'static,
{
    let keeping = HeadersKept {
        client,
        headers: Mutex::new(HeaderMap::new()),
    };
    let page = Page {
        endpoint: &*endpoint,
        number,
    };
    let items: Vec<T> = page.query_async(&keeping).await?;
    let headers = keeping.headers.into_inner().unwrap_or_default();
    Ok((items, Rest::from_headers(&headers)))
}

/// One page of an endpoint.
struct Page<'e, E> {
    endpoint: &'e E,
    number: u64,
}

impl<E: Endpoint> Endpoint for Page<'_, E> {
    fn method(&self) -> Method {
        self.endpoint.method()
    }

    fn endpoint(&self) -> Cow<'static, str> {
        self.endpoint.endpoint()
    }

    fn url_base(&self) -> UrlBase {
        self.endpoint.url_base()
    }

    fn parameters(&self) -> QueryParams<'_> {
        let mut params = self.endpoint.parameters();
        params.push("page", self.number);
        params.push("per_page", PER_PAGE);
        params
    }

    fn body(&self) -> Result<Option<(&'static str, Vec<u8>)>, BodyError> {
        self.endpoint.body()
    }
}

/// The client, keeping the last answer's headers.
struct HeadersKept<'c> {
    client: &'c GitLabClient,
    headers: Mutex<HeaderMap>,
}

impl RestClient for HeadersKept<'_> {
    type Error = TransportError;

    fn rest_endpoint(&self, endpoint: &str) -> Result<Url, ApiError<Self::Error>> {
        self.client.rest_endpoint(endpoint)
    }
}

#[async_trait]
impl AsyncClient for HeadersKept<'_> {
    async fn rest_async(
        &self,
        request: RequestBuilder,
        body: Vec<u8>,
    ) -> Result<Response<Bytes>, ApiError<Self::Error>> {
        let response = self.client.rest_async(request, body).await?;
        if let Ok(mut kept) = self.headers.lock() {
            *kept = response.headers().clone();
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn the_page_count_is_read_when_gitlab_gives_it_and_the_next_page_otherwise() {
        assert_eq!(
            Rest::from_headers(&headers(&[("x-total-pages", "7"), ("x-next-page", "2")])),
            Rest::Counted(7)
        );
        assert_eq!(
            Rest::from_headers(&headers(&[("x-next-page", "3")])),
            Rest::Next(Some(3))
        );
        // The last page of an uncounted listing: X-Next-Page is empty.
        assert_eq!(
            Rest::from_headers(&headers(&[("x-next-page", "")])),
            Rest::Next(None)
        );
    }
}
