use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Asks a running server's probe, for Docker's `HEALTHCHECK` in an image
/// without curl: returns 0 when `url` answers 2xx within 3 s, 1 otherwise
/// (with the reason on stderr).
///
/// `url` is plain `http://host:port/path`.
///
/// # Examples
///
/// ```no_run
/// // In main, for `app healthcheck`:
/// std::process::exit(seaworthy_health::probe("http://127.0.0.1:8000/health"));
/// ```
pub fn probe(url: &str) -> i32 {
    match ask(url) {
        Ok(status) if (200..300).contains(&status) => 0,
        Ok(status) => {
            eprintln!("unhealthy: {url} answered {status}");
            1
        }
        Err(err) => {
            eprintln!("unhealthy: {url}: {err}");
            1
        }
    }
}

fn ask(url: &str) -> std::io::Result<u16> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_owned());
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid("only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| invalid("the host has no address"))?;
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nUser-Agent: seaworthy-probe\r\n\r\n"
    )?;
    let mut head = [0_u8; 64];
    let mut read = 0;
    while read < 12 {
        let n = stream.read(&mut head[read..])?;
        if n == 0 {
            break;
        }
        read += n;
    }
    let line = String::from_utf8_lossy(&head[..read]);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {line:?}")))
}
