//! HTTP basic authentication.

use base64::Engine;
use http::HeaderValue;
use http::header::InvalidHeaderValue;

/// The `Authorization` header value for HTTP basic authentication:
/// `Basic base64(user:password)`, marked sensitive (hyper never logs it).
///
/// Mesos's basic authenticator splits the decoded text on `:` and wants exactly two
/// parts, so a user or password holding `:` can never authenticate there. The error is
/// only for the type: base64 text is always a valid header value.
pub fn basic_authorization(user: &str, password: &str) -> Result<HeaderValue, InvalidHeaderValue> {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {token}"))?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_is_base64_of_user_colon_password() {
        let value = basic_authorization("fw", "s3cret").ok();
        assert_eq!(
            value.as_ref().and_then(|v| v.to_str().ok()),
            Some("Basic Znc6czNjcmV0")
        );
        assert!(value.is_some_and(|v| v.is_sensitive()));
    }
}
