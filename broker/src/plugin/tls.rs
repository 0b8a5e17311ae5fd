//! TLS towards a plugin endpoint (`https://`), from the plugin's `tls` section.

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::config::PluginTlsConfig;

/// Builds tonic's client TLS settings: the CA to trust (else the system roots are not used —
/// a CA is then required) and an optional client identity. Errors name the file.
pub(crate) fn client_config(tls: &PluginTlsConfig) -> Result<ClientTlsConfig, String> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))
    };
    let mut config = ClientTlsConfig::new();
    if let Some(ca) = &tls.ca {
        config = config.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(config)
}
