//! This machine's public address, as a storage account's firewall sees it: `EDW_RUNNER_IP`
//! when set, else the answer of a small HTTP echo service (`EDW_PUBLIC_IP_URL`, by default
//! [`DEFAULT_ECHO_URL`]), which returns the caller's address as plain text.

use std::net::IpAddr;
use std::time::Duration;

/// The echo service asked when `EDW_RUNNER_IP` is not set.
pub const DEFAULT_ECHO_URL: &str = "https://api.ipify.org";
/// How long the echo service may take.
const ECHO_WITHIN: Duration = Duration::from_secs(10);

/// An address and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerAddress {
    pub address: IpAddr,
    /// `EDW_RUNNER_IP`, or `https://api.ipify.org` (the echo service asked).
    pub source: String,
}

/// This machine's public address from `EDW_RUNNER_IP` or the echo service; the error says
/// what was tried and what to set.
pub async fn discover() -> Result<RunnerAddress, String> {
    let runner_ip = std::env::var("EDW_RUNNER_IP")
        .ok()
        .filter(|v| !v.trim().is_empty());
    if let Some(text) = runner_ip {
        return text
            .trim()
            .parse()
            .map(|address| RunnerAddress {
                address,
                source: "EDW_RUNNER_IP".to_owned(),
            })
            .map_err(|_| format!("EDW_RUNNER_IP {text:?} is not an IP address"));
    }
    let url = std::env::var("EDW_PUBLIC_IP_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ECHO_URL.to_owned());
    ask_echo_service(url.trim()).await.map_err(|why| {
        format!("{why}; set EDW_RUNNER_IP=<this machine's public IPv4 address> (or EDW_PUBLIC_IP_URL to an echo service that answers it)")
    })
}

/// The address `url` answers with (plain text, as api.ipify.org does).
pub async fn ask_echo_service(url: &str) -> Result<RunnerAddress, String> {
    let client = reqwest::Client::builder()
        .timeout(ECHO_WITHIN)
        .build()
        .map_err(|e| format!("cannot ask {url}: {e}"))?;
    let response = client.get(url).send().await.map_err(|e| {
        format!(
            "the address echo service {url} did not answer: {}",
            crate::error_chain::text(&e)
        )
    })?;
    let status = response.status();
    let body = response.text().await.map_err(|e| {
        format!(
            "the address echo service {url}: {}",
            crate::error_chain::text(&e)
        )
    })?;
    let shown: String = body.trim().chars().take(60).collect();
    if !status.is_success() {
        return Err(format!(
            "the address echo service {url} answered HTTP {}: {shown:?}",
            status.as_u16()
        ));
    }
    body.trim()
        .parse()
        .map(|address| RunnerAddress {
            address,
            source: url.to_owned(),
        })
        .map_err(|_| {
            format!("the address echo service {url} answered {shown:?}, not an IP address")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A one-shot HTTP server on loopback answering `status` and `body` (a stand-in for
    /// api.ipify.org, which answers the caller's address as plain text).
    fn echo_once(status: &str, body: &'static str) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let status = status.to_owned();
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        url
    }

    #[tokio::test]
    async fn the_echo_services_answer_is_the_address() {
        let url = echo_once("200 OK", "20.81.4.77\n");
        let found = ask_echo_service(&url).await.unwrap();
        assert_eq!(found.address, "20.81.4.77".parse::<IpAddr>().unwrap());
        assert_eq!(found.source, url);
    }

    #[tokio::test]
    async fn a_bad_answer_or_no_answer_names_the_service() {
        let url = echo_once("200 OK", "<html>rate limited</html>");
        let err = ask_echo_service(&url).await.unwrap_err();
        assert!(
            err.contains(&url) && err.contains("not an IP address"),
            "{err}"
        );
        let url = echo_once("503 Service Unavailable", "busy");
        let err = ask_echo_service(&url).await.unwrap_err();
        assert!(err.contains("HTTP 503"), "{err}");
        let err = ask_echo_service("http://127.0.0.1:1/").await.unwrap_err();
        assert!(err.contains("did not answer"), "{err}");
    }
}
