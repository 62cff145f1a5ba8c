//! TLS as libpq does it, on rustls: which sslmode checks what, root and client
//! certificates from PEM files, and the server certificate check itself delegated to
//! rustls' WebPKI verifier, relaxed only where the sslmode says so.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::sslmode::{RootCert, SslMode, TlsSettings};
use crate::error::{Error, Result};

fn file_error(what: &str, path: &Path, why: impl std::fmt::Display) -> Error {
    Error::invalid(
        format!("cannot use the {what} {}: {why}", path.display()),
        "check the path and that the file is PEM (-----BEGIN ...-----)",
    )
}

/// The rustls configuration for these settings; `None` when TLS is never used.
pub fn client_config(s: &TlsSettings) -> Result<Option<Arc<ClientConfig>>> {
    if s.mode == SslMode::Disable {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match (s.min_tls13, s.max_tls12) {
        (true, true) => {
            return Err(Error::invalid(
                "ssl_min_protocol_version TLSv1.3 is above ssl_max_protocol_version TLSv1.2",
                "leave one of them out",
            ))
        }
        (true, false) => &[&rustls::version::TLS13],
        (false, true) => &[&rustls::version::TLS12],
        (false, false) => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let verifier = Verifier::new(s, provider.clone())?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| Error::invalid(format!("TLS setup failed: {e}"), "report this as a bug"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match &s.client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let (chain, key) = client_identity(cert, key)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| file_error("client key", cert, e))?
        }
    };
    config.enable_sni = s.sni;
    if s.direct {
        // Direct TLS needs the ALPN protocol PostgreSQL registered.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
    }
    Ok(Some(Arc::new(config)))
}

fn roots(root: &RootCert) -> Result<Option<RootCertStore>> {
    let certs: Vec<CertificateDer<'static>> = match root {
        RootCert::None => return Ok(None),
        RootCert::File(path) => CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<std::result::Result<_, _>>())
            .map_err(|e| file_error("root certificate file", path, e))?,
        RootCert::System => rustls_native_certs::load_native_certs().certs,
    };
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(certs);
    if store.is_empty() {
        return Err(Error::invalid(
            match root {
                RootCert::File(p) => format!("the root certificate file {} holds no usable CA certificate", p.display()),
                _ => "sslrootcert=system found no CA certificates on this machine".to_string(),
            },
            "name a PEM file with the CA's certificate in sslrootcert (or install the system's CA bundle, or set SSL_CERT_FILE)",
        ));
    }
    Ok(Some(store))
}

/// The client's certificate chain and key; libpq's rule for the key's mode: no access
/// for others, and for the group only when root owns the file.
fn client_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<std::result::Result<_, _>>())
        .map_err(|e| file_error("client certificate file", cert, e))?;
    if chain.is_empty() {
        return Err(file_error(
            "client certificate file",
            cert,
            "it holds no certificate",
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(key).map_err(|e| file_error("client key file", key, e))?;
        let allowed = if meta.uid() == 0 { 0o640 } else { 0o600 };
        if meta.mode() & 0o777 & !allowed != 0 {
            return Err(Error::invalid(
                format!(
                    "the client key file {} can be read by others",
                    key.display()
                ),
                format!("chmod {allowed:o} {}", key.display()),
            ));
        }
    }
    let text = std::fs::read_to_string(key).map_err(|e| file_error("client key file", key, e))?;
    if text.contains("ENCRYPTED") {
        return Err(file_error(
            "client key file",
            key,
            "it is encrypted; decrypt it (openssl pkey -in KEY -out PLAIN.key) and keep it mode 0600",
        ));
    }
    let key_der = PrivateKeyDer::from_pem_slice(text.as_bytes())
        .map_err(|e| file_error("client key file", key, e))?;
    Ok((chain, key_der))
}

/// What libpq checks of the server's certificate: nothing without a root certificate
/// (allow, prefer, require); the chain with one (and always for verify-ca); the chain and
/// the host name for verify-full. Handshake signatures are always checked.
#[derive(Debug)]
struct Verifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl Verifier {
    fn new(s: &TlsSettings, provider: Arc<CryptoProvider>) -> Result<Verifier> {
        let webpki = match roots(&s.root)? {
            None => None,
            Some(store) => Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                    .build()
                    .map_err(|e| {
                        Error::invalid(format!("TLS setup failed: {e}"), "check sslrootcert")
                    })?,
            ),
        };
        Ok(Verifier {
            webpki,
            check_name: s.mode == SslMode::VerifyFull,
            provider,
        })
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            // WebPKI checks the name only after the chain has passed.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
