//! Reading an access token's claims. Not verified: the token is only read to show who we are
//! and which permissions it carries; Graph verifies it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

/// The payload of a JWT, or None if the token is not a JWT (opaque).
pub(super) fn claims(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (_h, p, _s) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.is_object().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_read_from_a_jwt_and_opaque_tokens_give_none() {
        let p = URL_SAFE_NO_PAD.encode(r#"{"tid":"t1","roles":["A"]}"#);
        let c = claims(&format!("eyJhbGciOiJub25lIn0.{p}.sig")).unwrap();
        assert_eq!(c["tid"], "t1");
        assert!(claims("opaque-token").is_none());
        assert!(claims("a.b.c").is_none());
    }
}
