//! The app's certificate (PEM or PFX) and the signed client assertion (PS256) it signs in
//! with.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::RsaKeyPair;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{GraphError, Secret};

/// A certificate and its RSA private key, loaded from a PEM or PFX file.
pub struct AppCertificate {
    /// base64url SHA-256 of the certificate DER (`x5t#S256`).
    pub x5t_s256: String,
    key: RsaKeyPair,
}

impl std::fmt::Debug for AppCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCertificate")
            .field("x5t_s256", &self.x5t_s256)
            .finish_non_exhaustive()
    }
}

/// Whether the bytes look like DER (a PFX starts with a SEQUENCE).
fn looks_like_der(bytes: &[u8]) -> bool {
    bytes.first() == Some(&0x30)
}

impl AppCertificate {
    pub fn load(path: &Path, password: Option<&Secret>) -> Result<AppCertificate, GraphError> {
        let bytes = std::fs::read(path).map_err(|e| {
            GraphError::Config(format!(
                "cannot read the certificate {}: {e}",
                path.display()
            ))
        })?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let text = std::str::from_utf8(&bytes).ok();
        let result = match text {
            Some(t) if t.contains("-----BEGIN") => Self::from_pem(t, password),
            _ if ext == "pfx" || ext == "p12" || looks_like_der(&bytes) => {
                Self::from_pfx(&bytes, password)
            }
            _ => Err("not a PEM certificate (no -----BEGIN line) nor a PFX/PKCS#12 file".into()),
        };
        result.map_err(|m| GraphError::Config(format!("certificate {}: {m}", path.display())))
    }

    /// A PFX/PKCS#12 file (AES-256 as OpenSSL 3 and current Windows write it, or the legacy
    /// 3DES/RC2 of older exports) with the certificate and its RSA key.
    pub fn from_pfx(bytes: &[u8], password: Option<&Secret>) -> Result<AppCertificate, String> {
        use p12_keystore::{KeyStore, Pkcs12ImportPolicy};
        let pass = password.map(Secret::expose).unwrap_or("");
        let store =
            KeyStore::from_pkcs12(bytes, pass, Pkcs12ImportPolicy::Relaxed).map_err(|e| {
                let hint = if password.is_none() {
                    "if it has a password, put it in a file and pass --certificate-password-file, \
                 or set AZURE_CLIENT_CERTIFICATE_PASSWORD"
                } else {
                    "check the password"
                };
                format!("cannot open the PFX file ({e}): {hint}")
            })?;
        let (_, chain) = store
            .private_key_chain()
            .ok_or("the PFX file holds no private key: export it again with the private key")?;
        let cert = chain
            .certs()
            .first()
            .ok_or("the PFX file holds a key but no certificate: export it with the certificate")?;
        let key = RsaKeyPair::from_pkcs8(chain.key().as_der())
            .map_err(|e| format!("the private key in the PFX is not a usable RSA key ({e})"))?;
        Ok(AppCertificate {
            x5t_s256: URL_SAFE_NO_PAD.encode(Sha256::digest(cert.as_der())),
            key,
        })
    }

    pub fn from_pem(text: &str, password: Option<&Secret>) -> Result<AppCertificate, String> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let _ = password; // an encrypted PEM key is refused with a hint
        let cert = CertificateDer::from_pem_slice(text.as_bytes()).map_err(|_| {
            "no certificate in it: the PEM file must hold the certificate \
             (-----BEGIN CERTIFICATE-----) and its private key"
                .to_string()
        })?;
        let unusable =
            |e: ring::error::KeyRejected| format!("the private key is not a usable RSA key ({e})");
        let key = match PrivateKeyDer::from_pem_slice(text.as_bytes()) {
            Ok(PrivateKeyDer::Pkcs8(der)) => {
                RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(unusable)?
            }
            Ok(PrivateKeyDer::Pkcs1(der)) => {
                RsaKeyPair::from_der(der.secret_pkcs1_der()).map_err(unusable)?
            }
            Ok(_) => {
                return Err(
                    "the private key is not an RSA key: Entra app certificates use RSA \
                            keys"
                        .into(),
                )
            }
            Err(_) if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") => {
                return Err(
                    "the private key is encrypted; write it out unencrypted once with \
                        `openssl pkey -in app.pem -out key.pem` and keep that file safe"
                        .into(),
                )
            }
            Err(_) => {
                return Err(
                    "no private key in it: the PEM file must hold the certificate and its \
                        private key (-----BEGIN PRIVATE KEY-----)"
                        .into(),
                )
            }
        };
        Ok(AppCertificate {
            x5t_s256: URL_SAFE_NO_PAD.encode(Sha256::digest(cert.as_ref())),
            key,
        })
    }

    /// The signed client assertion for the token endpoint `aud`: PS256, valid 10 minutes.
    pub fn assertion(&self, client_id: &str, aud: &str) -> Result<Secret, GraphError> {
        let now = chrono::Utc::now().timestamp();
        let header = json!({"alg": "PS256", "typ": "JWT", "x5t#S256": self.x5t_s256});
        let claims = json!({
            "aud": aud, "iss": client_id, "sub": client_id, "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now, "iat": now, "exp": now + 600,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PSS_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| GraphError::Auth("could not sign the client assertion".into()))?;
        Ok(Secret::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(sig)
        )))
    }

    /// The public key (PKCS#1 RSAPublicKey DER), for verifying assertions in tests.
    pub fn public_key_der(&self) -> Vec<u8> {
        use ring::signature::KeyPair;
        self.key.public_key().as_ref().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = include_str!("../../tests/fixtures/certs/app.pem");
    const PEM1: &str = include_str!("../../tests/fixtures/certs/app-pkcs1.pem");
    const X5T: &str = include_str!("../../tests/fixtures/certs/x5t-s256.txt");

    #[test]
    fn assertion_has_the_documented_header_claims_and_a_valid_signature() {
        for pem in [PEM, PEM1] {
            let cert = AppCertificate::from_pem(pem, None).unwrap();
            assert_eq!(cert.x5t_s256, X5T.trim());
            let aud = "https://login.example/tenant/oauth2/v2.0/token";
            let a = cert.assertion("client-1", aud).unwrap();
            let parts: Vec<&str> = a.expose().split('.').collect();
            assert_eq!(parts.len(), 3);
            let h: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
            assert_eq!(h["alg"], "PS256");
            assert_eq!(h["x5t#S256"], X5T.trim());
            let c = super::super::claims::claims(a.expose()).unwrap();
            assert_eq!(c["aud"], aud);
            assert_eq!(c["iss"], "client-1");
            assert_eq!(c["sub"], "client-1");
            let (nbf, exp) = (c["nbf"].as_i64().unwrap(), c["exp"].as_i64().unwrap());
            assert!(exp > nbf && exp - nbf <= 600);
            assert_ne!(
                c["jti"],
                super::super::claims::claims(cert.assertion("client-1", aud).unwrap().expose())
                    .unwrap()["jti"]
            );
            let key = ring::signature::UnparsedPublicKey::new(
                &ring::signature::RSA_PSS_2048_8192_SHA256,
                cert.public_key_der(),
            );
            let signed = format!("{}.{}", parts[0], parts[1]);
            key.verify(
                signed.as_bytes(),
                &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
            )
            .unwrap();
        }
    }

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/certs")
            .join(name)
    }

    #[test]
    fn pfx_gives_the_same_certificate_as_the_pem_aes_and_legacy_3des() {
        let pass = Secret::new("test-only");
        for name in ["app.pfx", "app-legacy-3des.pfx"] {
            let c = AppCertificate::load(&fixture(name), Some(&pass)).unwrap();
            assert_eq!(c.x5t_s256, X5T.trim(), "{name}");
            let pem = AppCertificate::from_pem(PEM, None).unwrap();
            assert_eq!(c.public_key_der(), pem.public_key_der(), "{name}");
        }
    }

    #[test]
    fn pfx_with_a_wrong_or_missing_password_says_how_to_give_it_and_never_echoes_it() {
        let e = AppCertificate::load(&fixture("app.pfx"), Some(&Secret::new("wrong-pass")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("check the password"), "{e}");
        assert!(!e.contains("wrong-pass"), "{e}");
        let e = AppCertificate::load(&fixture("app.pfx"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--certificate-password-file"), "{e}");
    }

    #[test]
    fn pem_without_a_key_is_explained() {
        let cert_only = include_str!("../../tests/fixtures/certs/cert.pem");
        let e = AppCertificate::from_pem(cert_only, None).unwrap_err();
        assert!(e.contains("private key"), "{e}");
    }
}
