//! Wire types shared by every handler: the per-request context, Graph's API version, the
//! answer before it becomes HTTP, Graph's error envelope and 429 shape, request headers, and
//! URL decoding. Depends on nothing else in the simulator.

use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ver {
    V1,
    Beta,
}

impl Ver {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Ver::V1 => "v1.0",
            Ver::Beta => "beta",
        }
    }
}

/// Per-request context: ids for the headers and the error envelope, and the base URL the
/// client used (for `@odata.nextLink` and `@odata.context`).
#[derive(Clone, Debug)]
pub(super) struct Ctx {
    pub request_id: String,
    pub client_request_id: String,
    pub base: String,
}

/// A fresh request id, as Graph gives one.
pub(super) fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(super) fn graph_date() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string()
}

#[derive(Clone, Debug)]
pub(super) enum Body {
    Empty,
    Json(Value),
    Text(String),
}

/// An answer, before it becomes HTTP (or a `$batch` item).
#[derive(Clone, Debug)]
pub(super) struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Resp {
    pub(super) fn json(status: u16, v: Value) -> Resp {
        Resp {
            status,
            headers: vec![],
            body: Body::Json(v),
        }
    }
    pub(super) fn empty(status: u16) -> Resp {
        Resp {
            status,
            headers: vec![],
            body: Body::Empty,
        }
    }
    pub(super) fn text(status: u16, s: String) -> Resp {
        Resp {
            status,
            headers: vec![],
            body: Body::Text(s),
        }
    }
    pub(super) fn with_header(mut self, k: &str, v: impl Into<String>) -> Resp {
        self.headers.push((k.to_string(), v.into()));
        self
    }
}

/// A Graph error before it gets its envelope.
#[derive(Clone, Debug)]
pub(super) struct GErr {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl GErr {
    pub(super) fn new(status: u16, code: &'static str, message: impl Into<String>) -> GErr {
        GErr {
            status,
            code,
            message: message.into(),
        }
    }
    pub(super) fn bad(message: impl Into<String>) -> GErr {
        GErr::new(400, "BadRequest", message)
    }
    pub(super) fn unsupported(message: impl Into<String>) -> GErr {
        GErr::new(400, "Request_UnsupportedQuery", message)
    }
    pub(super) fn denied() -> GErr {
        GErr::new(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }
    pub(super) fn not_found(key: &str) -> GErr {
        GErr::new(
            404,
            "Request_ResourceNotFound",
            format!(
                "Resource '{key}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }
    pub(super) fn resp(&self, ctx: &Ctx) -> Resp {
        graph_error(ctx, self.status, self.code, &self.message)
    }
}

/// Graph's error envelope.
pub(super) fn graph_error(ctx: &Ctx, status: u16, code: &str, message: &str) -> Resp {
    Resp::json(
        status,
        json!({"error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": graph_date(),
                "request-id": ctx.request_id,
                "client-request-id": ctx.client_request_id,
            }
        }}),
    )
}

/// The 429 answer, as the reference shows it.
pub(super) fn too_many(ctx: &Ctx, retry_after: &str) -> Resp {
    Resp::json(
        429,
        json!({"error": {
            "code": "TooManyRequests",
            "message": "Please retry again later.",
            "innerError": {
                "code": "429",
                "date": graph_date(),
                "request-id": ctx.request_id,
                "client-request-id": ctx.client_request_id,
                "status": "429",
            }
        }}),
    )
    .with_header("Retry-After", retry_after)
}

/// Request headers, names in lower case.
pub(super) type Headers = Vec<(String, String)>;

pub(super) fn header<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Parses a query string into decoded pairs (`+` is a space).
pub(super) fn parse_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

pub(super) fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Decodes a path segment (`+` stays a plus).
pub(super) fn decode_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}
