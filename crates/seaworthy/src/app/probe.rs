//! `healthcheck`: asks the running server's liveness probe, for Docker's
//! `HEALTHCHECK` in an image without curl.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::Settings;

/// Asks `/health` on `HEALTH_PORT` when set, else on `PORT`, over TLS when
/// the server serves it: 0 when it answers 2xx, else 1 (with the reason on
/// stderr).
pub(super) async fn healthcheck(settings: &Settings) -> i32 {
    let ip = match settings.host {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    match (settings.health_port, settings.tls()) {
        #[cfg(feature = "tls")]
        (None, true) => {
            let addr = SocketAddr::new(ip, settings.port);
            match tls::https_probe(addr).await {
                Ok(()) => 0,
                Err(err) => {
                    let hint = if settings.tls_client_ca.is_some() {
                        " (TLS_CLIENT_CA requires client certificates: set HEALTH_PORT for probes)"
                    } else {
                        ""
                    };
                    eprintln!("unhealthy: https://{addr}/health: {err}{hint}");
                    1
                }
            }
        }
        (port, _) => {
            let addr = SocketAddr::new(ip, port.unwrap_or(settings.port));
            let url = format!("http://{addr}/health");
            // The probe blocks (it is a short synchronous client).
            tokio::task::spawn_blocking(move || seaworthy_health::probe(&url))
                .await
                .unwrap_or(1)
        }
    }
}

#[cfg(feature = "tls")]
mod tls {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// `GET /health` over TLS to this machine's own server, within 5 s. The
    /// certificate is not checked against a name (it names the public host,
    /// not 127.0.0.1): this asks whether the server is alive, over a
    /// loopback connection nobody else can stand in for; the handshake's
    /// signatures are still verified.
    pub(super) async fn https_probe(
        addr: SocketAddr,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Loopback(provider)))
            .with_no_client_auth();
        let ask = async {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            let name = ServerName::IpAddress(addr.ip().into());
            let mut stream = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await?;
            stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .await?;
            let mut head = [0_u8; 12];
            stream.read_exact(&mut head).await?;
            Ok::<_, std::io::Error>(head)
        };
        let head = tokio::time::timeout(Duration::from_secs(5), ask).await??;
        if head.starts_with(b"HTTP/1.1 2") {
            Ok(())
        } else {
            Err(format!("answered {}", String::from_utf8_lossy(&head[9..])).into())
        }
    }

    /// The self-probe's certificate check: signatures verified, names not
    /// (see [`https_probe`]).
    #[derive(Debug)]
    struct Loopback(Arc<CryptoProvider>);

    impl ServerCertVerifier for Loopback {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
