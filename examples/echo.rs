//! A demo upstream for the quick start: `cargo run --example echo`.
//!
//! Answers every request, whatever its method or path, with a JSON description of what it
//! received: method, path, query and the request headers. Put gatehouse in front of it and
//! the identity headers gatehouse sets (`X-Auth-User`, `X-Auth-Subject`, `X-Auth-Roles`)
//! show up in the answer. It never reads or serves a file, so running it from the
//! repository (next to `./data`, which holds password hashes and perhaps the signing
//! secret) exposes nothing.
//!
//! Listens on `127.0.0.1:3000` (the shipped `gateway.toml`'s upstream) unless
//! `--listen ADDR` or the `ECHO_LISTEN` environment variable says otherwise (port 0 picks a
//! free port); the first line on stdout is `echo listening on http://ADDR`, with the address
//! actually bound.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Map, Value};

const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
const USAGE: &str = "usage: echo [--listen ADDR]   (or ECHO_LISTEN=ADDR; default 127.0.0.1:3000)";

/// `--listen ADDR` / `--listen=ADDR`, else `ECHO_LISTEN`, else the default.
fn listen_addr() -> Result<Option<SocketAddr>, String> {
    let mut args = std::env::args().skip(1);
    let mut chosen = None;
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        } else if arg == "--listen" {
            chosen = Some(
                args.next()
                    .ok_or("--listen needs an address, e.g. 127.0.0.1:3000")?,
            );
        } else if let Some(value) = arg.strip_prefix("--listen=") {
            chosen = Some(value.to_string());
        } else {
            return Err(format!("unexpected argument `{arg}`"));
        }
    }
    let text = match chosen {
        Some(text) => text,
        None => std::env::var("ECHO_LISTEN").unwrap_or_else(|_| DEFAULT_LISTEN.to_string()),
    };
    text.parse()
        .map(Some)
        .map_err(|_| format!("`{text}` is not an address like 127.0.0.1:3000"))
}

/// The JSON answer: what arrived, nothing else.
fn describe(request: &Request<Incoming>) -> Value {
    let mut headers = Map::new();
    for (name, value) in request.headers() {
        let value = Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned());
        match headers.get_mut(name.as_str()) {
            None => {
                headers.insert(name.as_str().to_string(), value);
            }
            Some(Value::Array(values)) => values.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
        }
    }
    json!({
        "method": request.method().as_str(),
        "path": request.uri().path(),
        "query": request.uri().query(),
        "version": format!("{:?}", request.version()),
        "headers": headers,
    })
}

async fn echo(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut body = serde_json::to_vec_pretty(&describe(&request)).unwrap_or_default();
    body.push(b'\n');
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

#[tokio::main]
async fn main() -> ExitCode {
    let addr = match listen_addr() {
        Ok(Some(addr)) => addr,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("echo: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("echo: cannot listen on {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let bound = listener.local_addr().unwrap_or(addr);
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "echo listening on http://{bound}");
    let _ = stdout.flush();
    drop(stdout);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                eprintln!("echo: accept: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let service = hyper::service::service_fn(echo);
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
