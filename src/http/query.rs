//! Query parameters read into a typed struct ([`TypedQuery`]): an unknown
//! parameter or a bad value is a 400 naming it, in our API's shape; boolean
//! flags read as [`flag`] reads them.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::error::ApiError;

/// A route's query parameters as `T` (which should deny unknown fields).
pub struct TypedQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for TypedQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parse(parts.uri.query().unwrap_or("")).map(TypedQuery)
    }
}

/// `query` as `T`, or a 400 naming the parameter at fault.
pub fn parse<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let message = e.inner().to_string();
        // An unknown parameter is named by serde's message, a bad value by
        // its path.
        let field = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string)
            .unwrap_or_else(|| e.path().to_string());
        let message = if message.starts_with("unknown field") {
            format!("unknown query parameter {field:?}")
        } else if message.starts_with("must be") {
            format!("{field} {message}")
        } else {
            format!("{field}: {message}")
        };
        ApiError::bad_field(field, message)
    })
}

/// A boolean flag as clients write one: `true`/`1`/empty (present) or
/// `false`/`0`.
pub fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    let text = String::deserialize(deserializer)?;
    match text.as_str() {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(serde::de::Error::custom(format!(
            "must be true or false, not {other:?}"
        ))),
    }
}

/// `?wait=`: answer when the job is done (bounded by the server).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    #[serde(default, deserialize_with = "flag")]
    pub wait: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_as_clients_write_them_and_anything_else_is_named() {
        let wait = |q: &str| parse::<WaitQuery>(q).map(|w| w.wait);
        assert!(!wait("").unwrap());
        assert!(wait("wait=true").unwrap());
        assert!(wait("wait=1").unwrap());
        assert!(wait("wait").unwrap());
        assert!(!wait("wait=false").unwrap());
        assert!(!wait("wait=0").unwrap());
        let bad = wait("wait=maybe").unwrap_err();
        assert_eq!(bad.field.as_deref(), Some("wait"));
        assert_eq!(bad.message, "wait must be true or false, not \"maybe\"");
        let unknown = wait("wait=true&fields=*").unwrap_err();
        assert_eq!(unknown.field.as_deref(), Some("fields"));
        assert_eq!(unknown.message, "unknown query parameter \"fields\"");
    }
}
