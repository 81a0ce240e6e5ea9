//! A fault-injecting HTTP proxy to put in front of Azurite (or any HTTP service): it forwards
//! every request, counts them, and answers chosen requests with an error status (with a
//! `Retry-After`), a dropped connection or added latency. Tests use it to prove retries,
//! no-retry on refused credentials, and no loss under storage faults.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What the proxy does to one request instead of (or before) forwarding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (and `Retry-After: secs` when given); not forwarded.
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    /// Close the connection without an answer; not forwarded.
    Reset,
    /// Wait, then forward.
    Delay(Duration),
}

#[derive(Debug, Default)]
struct State {
    requests: AtomicU64,
    faults_injected: AtomicU64,
    /// Faults for the next requests, in order.
    queued: Mutex<VecDeque<Fault>>,
    /// Faults applied after the queued ones, each to one request in N (the first rule that
    /// matches the request's number wins).
    every: Mutex<Vec<(u64, Fault)>>,
}

/// A running proxy; it stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    upstream_path: String,
    state: Arc<State>,
    stop: CancellationToken,
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum FaultProxyError {
    #[error("the upstream {0:?} is not an http://host:port[/path] URL")]
    Upstream(String),
    #[error("cannot listen on loopback")]
    Listen(#[from] std::io::Error),
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port in front of `upstream`
    /// (`http://127.0.0.1:10001/devstoreaccount1`: scheme, host, port and an optional path).
    pub async fn start(upstream: &str) -> Result<FaultProxy, FaultProxyError> {
        let rest = upstream
            .strip_prefix("http://")
            .ok_or_else(|| FaultProxyError::Upstream(upstream.to_owned()))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(FaultProxyError::Upstream(upstream.to_owned()));
        }
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let stop = CancellationToken::new();
        let client = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(4))
            .build()
            .map_err(|e| FaultProxyError::Listen(std::io::Error::other(e)))?;
        let origin = format!("http://{authority}");
        tokio::spawn(serve(listener, origin, client, state.clone(), stop.clone()));
        Ok(FaultProxy {
            addr,
            upstream_path: path.to_owned(),
            state,
            stop,
        })
    }

    /// The proxy's URL with the upstream's path (use it where the upstream URL was).
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.upstream_path)
    }

    /// Requests received so far (faulted ones included).
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Faults injected so far.
    pub fn faults_injected(&self) -> u64 {
        self.state.faults_injected.load(Ordering::SeqCst)
    }

    /// Applies `fault` to each of the next `times` requests.
    pub fn fail_next(&self, times: usize, fault: Fault) {
        let mut queued = self.state.queued.lock().unwrap_or_else(|p| p.into_inner());
        queued.extend(std::iter::repeat_n(fault, times));
    }

    /// Applies `fault` to one request in `one_in` from now on (`None` stops it). The choice is
    /// by request count, so a run is repeatable.
    pub fn fail_every(&self, rule: Option<(u64, Fault)>) {
        *self.state.every.lock().unwrap_or_else(|p| p.into_inner()) = rule.into_iter().collect();
    }

    /// Adds a rule: `fault` for one request in `one_in` (rules added earlier win).
    pub fn also_every(&self, one_in: u64, fault: Fault) {
        self.state
            .every
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((one_in, fault));
    }

    /// Adds the rules of `mix` (a storage service having a bad day).
    pub fn inject(&self, mix: &FaultMix) {
        self.also_every(
            mix.throttled_one_in,
            Fault::Status {
                status: 429,
                retry_after: Some(1),
            },
        );
        self.also_every(
            mix.unavailable_one_in,
            Fault::Status {
                status: 503,
                retry_after: None,
            },
        );
        self.also_every(mix.reset_one_in, Fault::Reset);
        self.also_every(mix.delayed_one_in, Fault::Delay(mix.delay));
    }
}

/// One request in N gets each fault: 429 with Retry-After 1 s, 503, a dropped connection, and
/// `delay` of added latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultMix {
    pub throttled_one_in: u64,
    pub unavailable_one_in: u64,
    pub reset_one_in: u64,
    pub delayed_one_in: u64,
    pub delay: Duration,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(
    listener: TcpListener,
    origin: String,
    client: reqwest::Client,
    state: Arc<State>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.cancelled() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let (origin, client, state, stop) =
            (origin.clone(), client.clone(), state.clone(), stop.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                handle(request, origin.clone(), client.clone(), state.clone())
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

type ProxyResponse = Response<Full<Bytes>>;

/// The error a handler returns to make hyper drop the connection.
#[derive(Debug, thiserror::Error)]
#[error("connection reset by the fault proxy")]
struct InjectedReset;

async fn handle(
    request: Request<Incoming>,
    origin: String,
    client: reqwest::Client,
    state: Arc<State>,
) -> Result<ProxyResponse, InjectedReset> {
    let number = state.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let fault = {
        let queued = state
            .queued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        queued.or_else(|| {
            let every = state.every.lock().unwrap_or_else(|p| p.into_inner());
            every
                .iter()
                .find(|(one_in, _)| *one_in > 0 && number.is_multiple_of(*one_in))
                .map(|(_, fault)| fault.clone())
        })
    };
    if let Some(fault) = &fault {
        state.faults_injected.fetch_add(1, Ordering::SeqCst);
        match fault {
            Fault::Status {
                status,
                retry_after,
            } => {
                let mut response = Response::new(Full::new(Bytes::from_static(
                    b"<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>ServerBusy</Code><Message>injected by the fault proxy</Message></Error>",
                )));
                *response.status_mut() =
                    StatusCode::from_u16(*status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                response.headers_mut().insert(
                    "x-ms-error-code",
                    "ServerBusy".parse().expect("static header"),
                );
                if let Some(secs) = retry_after {
                    response
                        .headers_mut()
                        .insert("retry-after", secs.to_string().parse().expect("digits"));
                }
                return Ok(response);
            }
            Fault::Reset => return Err(InjectedReset),
            Fault::Delay(pause) => tokio::time::sleep(*pause).await,
        }
    }
    Ok(forward(request, &origin, &client).await)
}

async fn forward(
    request: Request<Incoming>,
    origin: &str,
    client: &reqwest::Client,
) -> ProxyResponse {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return bad_gateway(&format!("reading the request body: {e}")),
    };
    let mut outgoing = client.request(parts.method, format!("{origin}{path}"));
    for (name, value) in &parts.headers {
        if !is_hop_by_hop(name.as_str()) {
            outgoing = outgoing.header(name, value);
        }
    }
    let upstream = match outgoing.body(body).send().await {
        Ok(upstream) => upstream,
        Err(e) => return bad_gateway(&format!("upstream: {e}")),
    };
    let status = upstream.status();
    let headers = upstream.headers().clone();
    let bytes = upstream.bytes().await.unwrap_or_default();
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if !is_hop_by_hop(name.as_str()) && name != "content-length" {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "host"
            | "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-connection"
    )
}

fn bad_gateway(why: &str) -> ProxyResponse {
    let mut response = Response::new(Full::new(Bytes::from(why.to_owned())));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}
