//! The one window fencing cannot close (issue 26): a freeze that begins
//! after a sender's last look at its claim and before the request's bytes
//! leave. This measures how long that window is for the real client path
//! (`WebApi::post_message` under a claim: the claim confirmed, the
//! request built, timed, authorised and written on an open keep-alive
//! connection): from the end of the claim's confirmation to the first
//! byte of the request reaching a local server on loopback. Loopback's
//! own delivery is included, so the figures are an upper bound.
//!
//!     cargo bench --bench claim_window

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use labelwarden::notify::claim::{self, Claim, Confirming};
use labelwarden::slack::api::WebApi;
use labelwarden::slack::message::Message;
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const POSTS: usize = 2_000;
const WARM_UP: usize = 50;

/// A claim that is always this process's, and notes when its last
/// confirmation ended: the last look at the clock before a request.
struct Stamped {
    confirmed_at: Mutex<Option<Instant>>,
}

impl Claim for Stamped {
    fn confirm(&self) -> Confirming<'_> {
        let confirm: Pin<Box<dyn Future<Output = Result<(), String>> + Send>> =
            Box::pin(async move {
                *self.confirmed_at.lock().unwrap() = Some(Instant::now());
                Ok(())
            });
        confirm
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_secs(1)
    }
}

/// A server answering every request as `chat.postMessage` does, and
/// sending the instant each request's first byte was read.
async fn server(arrivals: mpsc::UnboundedSender<Instant>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let read = match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => read,
                    };
                    if buffer.is_empty() {
                        let _ = arrivals.send(Instant::now());
                    }
                    buffer.extend_from_slice(&chunk[..read]);
                    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buffer.len() < end + 4 + length {
                        continue;
                    }
                    buffer.clear();
                    let body = r#"{"ok":true,"channel":"C0ALERTS01","ts":"1764000000.000100"}"#;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if socket.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{address}/api")
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (sender, mut arrivals) = mpsc::unbounded_channel();
        let base = server(sender).await;
        let api = WebApi::new(
            labelwarden::http_client::builder().build().unwrap(),
            &base,
            SecretString::from("xoxb-bench".to_owned()),
        );
        let message = Message {
            text: "acme/backend#1 Checkout broken: :rotating_light: SLA clock started".into(),
            blocks: Vec::new(),
        };
        let stamped = Arc::new(Stamped {
            confirmed_at: Mutex::new(None),
        });
        let mut windows = Vec::with_capacity(POSTS);
        for n in 0..WARM_UP + POSTS {
            let post = api.post_message("C0ALERTS01", &message, None, false, "bench-key");
            claim::under(stamped.clone(), post).await.unwrap();
            let arrived = arrivals.recv().await.unwrap();
            let confirmed = stamped.confirmed_at.lock().unwrap().take().unwrap();
            if n >= WARM_UP {
                windows.push(arrived.duration_since(confirmed));
            }
        }
        windows.sort_unstable();
        let at = |q: f64| windows[((windows.len() as f64 * q) as usize).min(windows.len() - 1)];
        println!(
            "claim window over {POSTS} posts (confirmation's end to the request's first byte on loopback): p50 {:?}, p99 {:?}, max {:?}",
            at(0.5),
            at(0.99),
            windows[windows.len() - 1]
        );
    });
}
