//! The access log's line: written when the body has been sent whole
//! (`complete=true`, every byte counted), or when a body is dropped half
//! sent (`complete=false`, the bytes that went); the skipped paths never.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use seaworthy_layers::access_log::AccessLogLayer;
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// A body of a few chunks, one frame each.
struct Chunks(VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }
}

/// The log lines, as a subscriber writes them.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn a_line_when_the_body_ends_or_is_dropped_half_sent() {
    use tracing_subscriber::layer::SubscriberExt;
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || writer.clone()),
    );
    let _guard = tracing::subscriber::set_default(subscriber);
    let service = ServiceBuilder::new()
        .layer(AccessLogLayer::new().skip_paths(["/health"]))
        .service(service_fn(|_: Request<()>| async {
            let chunks = [Bytes::from_static(b"hello "), Bytes::from_static(b"world")];
            Ok::<_, std::convert::Infallible>(Response::new(Chunks(chunks.into())))
        }));

    // Sent whole.
    let response = service
        .clone()
        .oneshot(Request::get("/whole?token=SECRET").body(()).unwrap())
        .await
        .unwrap();
    let mut body = response.into_body();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        frame.unwrap();
    }
    drop(body);
    // Half sent: one frame, then the client went away.
    let response = service
        .clone()
        .oneshot(Request::post("/half").body(()).unwrap())
        .await
        .unwrap();
    let mut body = response.into_body();
    std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
        .await
        .unwrap()
        .unwrap();
    drop(body);
    // Skipped.
    let response = service
        .oneshot(Request::get("/health").body(()).unwrap())
        .await
        .unwrap();
    drop(response);

    let text = lines.text();
    let logged: Vec<&str> = text.lines().collect();
    assert_eq!(logged.len(), 2, "{text}");
    let whole = logged[0];
    for field in [
        "method=GET",
        "path=/whole",
        "status=200",
        "bytes=11",
        "complete=true",
    ] {
        assert!(whole.contains(field), "{field} not in {whole}");
    }
    assert!(!whole.contains("SECRET"), "{whole}");
    let half = logged[1];
    for field in ["method=POST", "path=/half", "bytes=6", "complete=false"] {
        assert!(half.contains(field), "{field} not in {half}");
    }
}
