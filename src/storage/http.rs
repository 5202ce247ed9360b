//! Outbound HTTP: OpenLineage events and alert webhooks. Each request waits
//! at most [`timeout`] (`WH_HTTP_TIMEOUT`, default 10 s), so an endpoint
//! that hangs cannot hold a build; and what is said about a request names
//! the endpoint's scheme, host and port only: URLs often carry a token in
//! their user info, path or query.

use std::time::Duration;

use serde_json::Value as Json;

/// How long one request may take when `WH_HTTP_TIMEOUT` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A request that failed; its message never holds the URL's secrets.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HttpError {
    pub message: String,
}

/// `WH_HTTP_TIMEOUT` (`5s`, `1m`, ...), else [`DEFAULT_TIMEOUT`]; an
/// unreadable value is the default too.
pub fn timeout() -> Duration {
    std::env::var("WH_HTTP_TIMEOUT")
        .ok()
        .and_then(|t| humantime::parse_duration(t.trim()).ok())
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// `scheme://host[:port]` of `url`: what messages may show of it.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}{port}", u.scheme(), u.host_str().unwrap_or_default())
        }
        Err(_) => "an unreadable URL".to_string(),
    }
}

/// POSTs `body` as JSON to `url`, waiting at most [`timeout`], with
/// `Authorization: Bearer <token>` when a token is given.
pub fn post_json(url: &str, body: &Json, bearer: Option<&str>) -> Result<(), HttpError> {
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(timeout())).build().into();
    let mut request = agent.post(url);
    if let Some(token) = bearer {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    request.send_json(body).map(|_| ()).map_err(|e| {
        // The transport's own words, with the URL taken out should it
        // quote it.
        let why = e.to_string().replace(url, &redacted(url));
        HttpError { message: format!("{} did not take the request: {why}", redacted(url)) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_scheme_host_and_port_only() {
        assert_eq!(redacted("https://user:s3cret@hooks.example.com/T0/B1/XyZ?token=abc"), "https://hooks.example.com");
        assert_eq!(redacted("http://127.0.0.1:5000/api/v1/lineage"), "http://127.0.0.1:5000");
        assert_eq!(redacted("not a url"), "an unreadable URL");
    }
}
