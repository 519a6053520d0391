//! `labelwarden probe`: asks a running `serve` whether it is alive
//! (`/healthz`) or ready (`/readyz`), for health checks where there is no
//! curl or shell (the container image is distroless). Exit 0 when the
//! answer is 200, 1 when it is anything else or nothing answers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// What to ask: /healthz (the process answers) or /readyz (its store
    /// answers and no destination is failing).
    #[arg(default_value = "/healthz", value_parser = parse_path)]
    path: String,
    /// Where `serve` listens, as given to `serve --listen`; an unspecified
    /// address (0.0.0.0, [::]) is asked on loopback.
    #[arg(long, env = "LABELWARDEN_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Give up after this long.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

fn parse_path(text: &str) -> Result<String, String> {
    match text {
        "/healthz" | "/readyz" => Ok(text.to_owned()),
        other => Err(format!("{other}: ask /healthz or /readyz")),
    }
}

/// The address to ask for a `serve` listening on `listen`.
fn target(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

pub fn run(args: ProbeArgs) -> ExitCode {
    let url = format!("http://{}{}", target(args.listen), args.path);
    let runtime = match super::small_runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let answer = runtime.block_on(async {
        let client = crate::http_client::builder()
            .timeout(args.timeout)
            .build()
            .map_err(crate::http_client::describe)?;
        let response = client
            .get(&url)
            .send()
            .await
            .map_err(crate::http_client::describe)?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        Ok::<_, String>((status, body))
    });
    match answer {
        Ok((status, body)) => {
            let body = body.trim();
            println!("{url}: {status} {body}");
            if status.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            println!("{url}: no answer: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_asked_on_loopback() {
        let asked = |listen: &str| target(listen.parse().unwrap()).to_string();
        assert_eq!(asked("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(asked("[::]:9000"), "[::1]:9000");
        assert_eq!(asked("10.1.2.3:8080"), "10.1.2.3:8080");
    }

    #[test]
    fn only_the_two_probe_paths_are_asked() {
        assert!(parse_path("/readyz").is_ok());
        assert!(parse_path("/metrics").unwrap_err().contains("/healthz"));
    }
}
