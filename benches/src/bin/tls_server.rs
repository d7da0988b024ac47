//! One HTTPS server for the TLS bench, in a process of its own so that the
//! bench can pin it to a core: `tls_server MODE CERT KEY`, where MODE is
//! `seaworthy` (seaworthy's `Server` with TLS), `axum-server` (axum-server
//! with rustls) or `plain` (`axum::serve` without TLS, the upstream behind
//! nginx). Serves `GET /` → `hello` on a loopback port, on a tokio runtime
//! with one worker thread, prints `listening on ADDR`, and runs until
//! killed. `LINGER_MS=N` sets seaworthy's lingering close (default 2000),
//! to measure what it costs.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, cert, key) = match args.as_slice() {
        [_, mode, cert, key] => (mode.clone(), cert.clone(), key.clone()),
        _ => {
            eprintln!("usage: tls_server seaworthy|axum-server|plain CERT KEY");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(serve(&mode, cert, key));
}

fn router() -> Router {
    Router::new().route("/", get(|| async { "hello" }))
}

async fn serve(mode: &str, cert: String, key: String) {
    match mode {
        "seaworthy" => {
            use seaworthy::listener::tls::TlsConfig;
            use seaworthy::listener::{Listener, Server};
            use seaworthy::shutdown::Shutdown;
            let tls = TlsConfig::new(cert, key).build().expect("certificates");
            let shutdown = Shutdown::builder().signals([]).build().expect("shutdown");
            let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).expect("bind");
            println!("listening on {}", listener.local_addr().unwrap());
            let mut server = Server::new();
            if let Some(ms) = std::env::var("LINGER_MS")
                .ok()
                .and_then(|ms| ms.parse().ok())
            {
                server = server.linger(std::time::Duration::from_millis(ms));
            }
            server
                .tls(tls)
                .serve(listener, router(), shutdown.token())
                .await;
        }
        "axum-server" => {
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .expect("certificates");
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            println!("listening on {}", listener.local_addr().unwrap());
            axum_server::from_tcp_rustls(listener, config)
                .serve(router().into_make_service())
                .await
                .expect("serve");
        }
        "plain" => {
            let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .expect("bind");
            println!("listening on {}", listener.local_addr().unwrap());
            axum::serve(listener, router()).await.expect("serve");
        }
        other => panic!("unknown mode {other}"),
    }
}
