//! Graph's error envelope, HTTP status → [`ErrorKind`], `Retry-After`.

use std::time::Duration;

use super::{CallError, ErrorKind};

/// Kind of a non-2xx answer.
pub(super) fn kind_for_status(status: u16) -> ErrorKind {
    match status {
        400 => ErrorKind::BadRequest,
        401 => ErrorKind::Unauthorized,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        429 => ErrorKind::Throttled,
        500..=599 => ErrorKind::Server,
        _ => ErrorKind::Other,
    }
}

/// Reads `{"error":{"code","message","innerError":{"request-id"}}}` (also `innererror`).
/// Returns (code, message, request-id from the body).
pub(super) fn parse_envelope(
    body: &serde_json::Value,
) -> (Option<String>, Option<String>, Option<String>) {
    let err = &body["error"];
    let s = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let inner = if err["innerError"].is_object() {
        &err["innerError"]
    } else {
        &err["innererror"]
    };
    (s(&err["code"]), s(&err["message"]), s(&inner["request-id"]))
}

/// Builds the [`CallError`] for a non-2xx answer.
pub(super) fn call_error(
    status: u16,
    body: &serde_json::Value,
    header_request_id: Option<String>,
) -> CallError {
    let (code, message, body_rid) = parse_envelope(body);
    CallError {
        kind: kind_for_status(status),
        status: Some(status),
        code: code.unwrap_or_else(|| default_code(status).to_string()),
        message: message.unwrap_or_else(|| default_message(status).to_string()),
        request_id: header_request_id.or(body_rid),
    }
}

fn default_code(status: u16) -> &'static str {
    match status {
        400 => "BadRequest",
        401 => "InvalidAuthenticationToken",
        403 => "Authorization_RequestDenied",
        404 => "Request_ResourceNotFound",
        429 => "TooManyRequests",
        503 => "serviceNotAvailable",
        _ => "HttpError",
    }
}

fn default_message(status: u16) -> String {
    format!("HTTP {status} with no error details")
}

/// A client-side error (no HTTP answer).
pub(super) fn local_error(kind: ErrorKind, code: &str, message: impl Into<String>) -> CallError {
    CallError {
        kind,
        status: None,
        code: code.into(),
        message: message.into(),
        request_id: None,
    }
}

/// `Retry-After` in seconds; decimals allowed (the simulator scales time). HTTP-dates are
/// read too. Negative or unreadable values → None.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs.min(3600.0)));
        }
        return None;
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(
        delta
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(3600)),
    )
}

impl CallError {
    /// A 403 that means the app or admin lacks a permission or role (report it as a permission
    /// problem, with the fix).
    pub fn is_permission_problem(&self) -> bool {
        self.kind == ErrorKind::Forbidden
            && matches!(
                self.code.as_str(),
                "Authorization_RequestDenied" | "accessDenied" | "Forbidden" | "AccessDenied"
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn retry_after_reads_integers_and_decimals() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after(" 0.25 "),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_retry_after("0"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("soon"), None);
        let past = parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(past, Duration::ZERO);
    }

    #[test]
    fn envelope_gives_code_message_and_request_id() {
        let body = json!({"error":{"code":"TooManyRequests","message":"Please retry again later.",
            "innerError":{"code":"429","date":"2024-01-01T00:00:00","request-id":"rid-1","status":"429"}}});
        let e = call_error(429, &body, None);
        assert_eq!(e.kind, ErrorKind::Throttled);
        assert_eq!(e.code, "TooManyRequests");
        assert_eq!(e.message, "Please retry again later.");
        assert_eq!(e.request_id.as_deref(), Some("rid-1"));
        // The header wins over the body.
        let e = call_error(429, &body, Some("hdr".into()));
        assert_eq!(e.request_id.as_deref(), Some("hdr"));
    }

    #[test]
    fn empty_bodies_still_give_a_useful_error() {
        let e = call_error(503, &serde_json::Value::Null, None);
        assert_eq!(e.kind, ErrorKind::Server);
        assert_eq!(e.code, "serviceNotAvailable");
        assert_eq!(
            e.to_string(),
            "503 serviceNotAvailable: HTTP 503 with no error details"
        );
    }

    #[test]
    fn permission_denials_are_recognised() {
        for code in ["Authorization_RequestDenied", "accessDenied"] {
            let e = call_error(403, &json!({"error":{"code":code,"message":"no"}}), None);
            assert!(e.is_permission_problem());
        }
        let e = call_error(
            404,
            &json!({"error":{"code":"Request_ResourceNotFound"}}),
            None,
        );
        assert!(!e.is_permission_problem());
        assert_eq!(e.kind, ErrorKind::NotFound);
    }
}
