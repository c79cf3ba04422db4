//! Reading token claims (not verified: the token is only read to show who we are and which
//! permissions it carries), certificates (PEM or PFX) and the signed client assertion (PS256).

use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::signature::RsaKeyPair;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{GraphError, Secret};

/// A fresh random GUID (version 4 form), e.g. for `client-request-id` and `jti`.
pub fn guid() -> String {
    let mut b = [0u8; 16];
    fastrand::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The payload of a JWT, or None if the token is not a JWT (opaque).
pub fn claims(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (_h, p, _s) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.is_object().then_some(v)
}

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

fn pem_blocks(text: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut label: Option<String> = None;
    let mut b64 = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("-----BEGIN ") {
            label = Some(rest.trim_end_matches('-').to_string());
            b64.clear();
        } else if line.starts_with("-----END ") {
            if let Some(l) = label.take() {
                if let Ok(der) = STANDARD.decode(b64.as_bytes()) {
                    out.push((l, der));
                }
            }
        } else if label.is_some() && !line.contains(':') {
            b64.push_str(line);
        }
    }
    out
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
        let _ = password; // an encrypted PEM key is refused with a hint
        let blocks = pem_blocks(text);
        let cert = blocks
            .iter()
            .find(|(l, _)| l == "CERTIFICATE")
            .map(|(_, d)| d)
            .ok_or(
                "no certificate in it: the PEM file must hold the certificate \
             (-----BEGIN CERTIFICATE-----) and its private key",
            )?;
        let key = if let Some((_, der)) = blocks.iter().find(|(l, _)| l == "PRIVATE KEY") {
            RsaKeyPair::from_pkcs8(der)
                .map_err(|e| format!("the private key is not a usable RSA key ({e})"))?
        } else if let Some((_, der)) = blocks.iter().find(|(l, _)| l == "RSA PRIVATE KEY") {
            RsaKeyPair::from_der(der)
                .map_err(|e| format!("the private key is not a usable RSA key ({e})"))?
        } else if blocks.iter().any(|(l, _)| l == "ENCRYPTED PRIVATE KEY") {
            return Err(
                "the private key is encrypted; write it out unencrypted once with \
                        `openssl pkey -in app.pem -out key.pem` and keep that file safe"
                    .into(),
            );
        } else {
            return Err(
                "no private key in it: the PEM file must hold the certificate and its \
                        private key (-----BEGIN PRIVATE KEY-----)"
                    .into(),
            );
        };
        Ok(AppCertificate {
            x5t_s256: URL_SAFE_NO_PAD.encode(Sha256::digest(cert)),
            key,
        })
    }

    /// The signed client assertion for the token endpoint `aud`: PS256, valid 10 minutes.
    pub fn assertion(&self, client_id: &str, aud: &str) -> Result<Secret, GraphError> {
        let now = chrono::Utc::now().timestamp();
        let header = json!({"alg": "PS256", "typ": "JWT", "x5t#S256": self.x5t_s256});
        let claims = json!({
            "aud": aud, "iss": client_id, "sub": client_id, "jti": guid(),
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
    fn guids_look_like_guids_and_differ() {
        let a = guid();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_ne!(a, guid());
    }

    #[test]
    fn claims_are_read_from_a_jwt_and_opaque_tokens_give_none() {
        let p = URL_SAFE_NO_PAD.encode(r#"{"tid":"t1","roles":["A"]}"#);
        let c = claims(&format!("eyJhbGciOiJub25lIn0.{p}.sig")).unwrap();
        assert_eq!(c["tid"], "t1");
        assert!(claims("opaque-token").is_none());
        assert!(claims("a.b.c").is_none());
    }

    #[test]
    fn assertion_has_the_documented_header_claims_and_a_valid_signature() {
        for pem in [PEM, PEM1] {
            let cert = AppCertificate::from_pem(pem, None).unwrap();
            assert_eq!(cert.x5t_s256, X5T.trim());
            let aud = "https://login.example/tenant/oauth2/v2.0/token";
            let a = cert.assertion("client-1", aud).unwrap();
            let parts: Vec<&str> = a.expose().split('.').collect();
            assert_eq!(parts.len(), 3);
            let h: Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
            assert_eq!(h["alg"], "PS256");
            assert_eq!(h["x5t#S256"], X5T.trim());
            let c = claims(a.expose()).unwrap();
            assert_eq!(c["aud"], aud);
            assert_eq!(c["iss"], "client-1");
            assert_eq!(c["sub"], "client-1");
            let (nbf, exp) = (c["nbf"].as_i64().unwrap(), c["exp"].as_i64().unwrap());
            assert!(exp > nbf && exp - nbf <= 600);
            assert_ne!(
                c["jti"],
                claims(cert.assertion("client-1", aud).unwrap().expose()).unwrap()["jti"]
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
