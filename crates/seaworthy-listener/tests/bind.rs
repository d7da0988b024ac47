//! Binding: socket options, SO_REUSEPORT, dual stack, Unix sockets.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use seaworthy_listener::{Addr, Listener, Source};

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[tokio::test]
async fn accepted_sockets_inherit_nodelay_and_keepalive() {
    let mut listener = Listener::bind(loopback()).unwrap();
    assert_eq!(listener.source(), &Source::Bound);
    let addr = listener.local_addr().unwrap().as_tcp().unwrap();
    let _client = TcpStream::connect(addr).unwrap();
    let (stream, peer) = listener.accept().await;
    let seaworthy_listener::Stream::Tcp(stream) = stream else {
        panic!("a TCP stream expected");
    };
    assert!(matches!(peer, Addr::Tcp(peer) if peer.ip().is_loopback()));
    let socket = socket2::SockRef::from(&stream);
    assert!(socket.tcp_nodelay().unwrap());
    assert!(socket.keepalive().unwrap());
    assert_eq!(
        socket.tcp_keepalive_time().unwrap(),
        Duration::from_secs(60)
    );
}

#[tokio::test]
async fn options_can_be_turned_off() {
    let mut listener = Listener::builder(loopback())
        .nodelay(false)
        .keepalive(None)
        .backlog(16)
        .bind()
        .unwrap();
    let addr = listener.local_addr().unwrap().as_tcp().unwrap();
    let _client = TcpStream::connect(addr).unwrap();
    let (seaworthy_listener::Stream::Tcp(stream), _) = listener.accept().await else {
        panic!("a TCP stream expected");
    };
    let socket = socket2::SockRef::from(&stream);
    assert!(!socket.tcp_nodelay().unwrap());
    assert!(!socket.keepalive().unwrap());
}

#[tokio::test]
async fn a_taken_port_is_a_bind_error_naming_the_address_unless_reuse_port() {
    let first = Listener::bind(loopback()).unwrap();
    let addr = first.local_addr().unwrap().as_tcp().unwrap();
    let err = Listener::bind(addr).unwrap_err();
    assert!(err.is_bind());
    assert_eq!(err.to_string(), format!("cannot bind {addr}"));
    assert_eq!(
        err.io_error().unwrap().kind(),
        std::io::ErrorKind::AddrInUse
    );

    let a = Listener::builder(loopback())
        .reuse_port(true)
        .bind()
        .unwrap();
    let shared = a.local_addr().unwrap().as_tcp().unwrap();
    let b = Listener::builder(shared).reuse_port(true).bind().unwrap();
    assert_eq!(b.local_addr().unwrap().as_tcp(), Some(shared));
}

#[tokio::test]
async fn ipv6_is_ipv6_only_unless_dual_stack_is_chosen() {
    let v6only = Listener::bind("[::]:0".parse().unwrap()).unwrap();
    let port = v6only.local_addr().unwrap().as_tcp().unwrap().port();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());

    let mut dual = Listener::builder("[::]:0".parse().unwrap())
        .dual_stack(true)
        .bind()
        .unwrap();
    let port = dual.local_addr().unwrap().as_tcp().unwrap().port();
    let _client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (_, peer) = dual.accept().await;
    // An IPv4 client, seen through the IPv6 socket as a mapped address.
    let peer = peer.as_tcp().unwrap();
    assert!(peer.is_ipv6(), "{peer}");
}

#[tokio::test]
async fn unix_sockets_bind_replace_stale_files_and_refuse_live_ones() {
    let dir = std::env::temp_dir().join(format!("seaworthy-bind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("app.sock");
    let _ = std::fs::remove_file(&path);

    let mut listener = Listener::builder_unix(&path).bind().unwrap();
    assert_eq!(
        listener.local_addr().unwrap(),
        Addr::Unix(Some(path.clone()))
    );
    let _client = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let (stream, _) = listener.accept().await;
    assert!(matches!(stream, seaworthy_listener::Stream::Unix(_)));

    // A live listener's file is not taken over.
    let err = Listener::builder_unix(&path).bind().unwrap_err();
    assert!(err.is_bind());
    assert_eq!(
        err.io_error().unwrap().kind(),
        std::io::ErrorKind::AddrInUse
    );

    // A stale one (its process gone) is replaced.
    drop(listener);
    assert!(path.exists());
    let again = Listener::builder_unix(&path).bind().unwrap();
    drop(again);

    // A file that is not a socket is never removed.
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, "data").unwrap();
    let err = Listener::builder_unix(&path).bind().unwrap_err();
    assert!(err.is_bind());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
    std::fs::remove_dir_all(&dir).unwrap();
}
