//! `http(s)://host:port/path` URLs and the resolution of redirects.

use std::fmt;

use http::Uri;
use http::uri::PathAndQuery;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS (the `tls` feature).
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// 80 or 443.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A URL that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid URL {url:?}: {problem}")]
pub struct UrlError {
    /// The URL (or `Location`) as given.
    pub url: String,
    /// What is wrong with it.
    pub problem: UrlProblem,
}

/// What is wrong with a URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlProblem {
    /// Not a URL at all (the parser's words).
    #[error("{0}")]
    Syntax(String),
    /// No `http://` or `https://` in front (a relative `Location` is one too).
    #[error("no scheme (expected http(s)://host:port)")]
    NoScheme,
    /// A scheme other than `http` or `https`.
    #[error("scheme {0} is not supported")]
    Scheme(String),
    /// No host after the scheme.
    #[error("no host")]
    NoHost,
    /// `user:password@host`: credentials go in an `Authorization` header, never the URL
    /// (they would otherwise be dropped without a word).
    #[error("user:password@ in the URL is not supported")]
    UserInfo,
}

/// Where a request goes: scheme, host, port and path, from an `http(s)://` URL.
///
/// **Invariant:** the scheme is `http` or `https`, the host is not empty and holds no
/// user information, and the path starts with `/` (`/` when the URL has none).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    scheme: Scheme,
    host: String,
    port: u16,
    path: String,
}

impl Target {
    /// Parses `http(s)://host[:port][/path][?query]`; the port defaults to the
    /// scheme's, a fragment is dropped.
    pub fn parse(url: &str) -> Result<Target, UrlError> {
        let bad = |problem| UrlError {
            url: url.to_owned(),
            problem,
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(UrlProblem::Syntax(e.to_string())))?;
        let scheme = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") => Scheme::Http,
            Some(s) if s.eq_ignore_ascii_case("https") => Scheme::Https,
            Some(other) => return Err(bad(UrlProblem::Scheme(other.to_owned()))),
            None => return Err(bad(UrlProblem::NoScheme)),
        };
        let authority = uri.authority().ok_or_else(|| bad(UrlProblem::NoHost))?;
        if authority.as_str().contains('@') {
            return Err(bad(UrlProblem::UserInfo));
        }
        if authority.host().is_empty() {
            return Err(bad(UrlProblem::NoHost));
        }
        let path = match uri.path_and_query().map(PathAndQuery::as_str) {
            None | Some("") => "/".to_owned(),
            Some(p) => p.to_owned(),
        };
        Ok(Target {
            scheme,
            host: authority.host().to_owned(),
            port: authority.port_u16().unwrap_or(scheme.default_port()),
            path,
        })
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host as in the URL (an IPv6 address in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`: what is connected to, and the `Host` header.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The `Host` header as browsers and curl send it: `host` when the port is the
    /// scheme's default, else `host:port`.
    pub fn host_header(&self) -> String {
        if self.port == self.scheme.default_port() {
            self.host.clone()
        } else {
            self.authority()
        }
    }

    /// The path and query (the request target), starting with `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The same host with another path and query (which must start with `/`).
    pub fn with_path(&self, path: &str) -> Result<Target, UrlError> {
        let bad = |problem| UrlError {
            url: path.to_owned(),
            problem,
        };
        if !path.starts_with('/') {
            return Err(bad(UrlProblem::Syntax("a path must start with /".into())));
        }
        let path: PathAndQuery = path
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(UrlProblem::Syntax(e.to_string())))?;
        Ok(Target {
            path: path.as_str().to_owned(),
            ..self.clone()
        })
    }

    /// `scheme://host:port` (no path).
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.authority())
    }

    /// Where a `Location` header sent in answer to a request to this target points:
    ///
    /// - scheme-relative `//host:port/path` (what Mesos masters send): this target's
    ///   scheme, so an `https` master's redirect stays `https`;
    /// - path-only `/path`: this target's scheme, host and port;
    /// - absolute `http(s)://…`: as it says (it may switch scheme).
    ///
    /// Anything else (a relative path, another scheme) is an error.
    pub fn redirect(&self, location: &str) -> Result<Target, UrlError> {
        let location = location.trim();
        if let Some(rest) = location.strip_prefix("//") {
            Target::parse(&format!("{}://{rest}", self.scheme)).map_err(|e| UrlError {
                url: location.to_owned(),
                problem: e.problem,
            })
        } else if location.starts_with('/') {
            self.with_path(location)
        } else {
            Target::parse(location)
        }
    }
}

/// `scheme://host:port/path?query`.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}:{}{}",
            self.scheme, self.host, self.port, self.path
        )
    }
}

impl std::str::FromStr for Target {
    type Err = UrlError;

    fn from_str(url: &str) -> Result<Target, UrlError> {
        Target::parse(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target {
        match Target::parse(url) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn parses_http_and_https_urls() {
        let t = target("http://127.0.0.1:5050");
        assert_eq!(
            (t.scheme(), t.host(), t.port(), t.path()),
            (Scheme::Http, "127.0.0.1", 5050, "/")
        );
        assert_eq!(t.authority(), "127.0.0.1:5050");
        assert_eq!(t.to_string(), "http://127.0.0.1:5050/");
        let t = target("https://m/api/v1/scheduler?x=1#frag");
        assert_eq!(
            (t.scheme(), t.authority(), t.path()),
            (Scheme::Https, "m:443".to_owned(), "/api/v1/scheduler?x=1")
        );
        assert_eq!(target("HTTP://m").scheme(), Scheme::Http);
        let v6 = target("http://[::1]:8080/x");
        assert_eq!((v6.host(), v6.authority()), ("[::1]", "[::1]:8080".into()));
        assert_eq!(target("http://m").base_url(), "http://m:80");
        assert_eq!(target("http://m").host_header(), "m");
        assert_eq!(target("https://m:443").host_header(), "m");
        assert_eq!(target("https://m:80").host_header(), "m:80");
    }

    #[test]
    fn refuses_what_it_cannot_reach() {
        let problem = |url: &str| Target::parse(url).err().map(|e| e.problem);
        assert_eq!(
            problem("ftp://m:5050"),
            Some(UrlProblem::Scheme("ftp".into()))
        );
        assert_eq!(problem("m:5050"), Some(UrlProblem::NoScheme));
        assert_eq!(problem("/just/a/path"), Some(UrlProblem::NoScheme));
        assert_eq!(problem("http://u:p@m:5050"), Some(UrlProblem::UserInfo));
        assert!(matches!(problem("http://"), Some(UrlProblem::Syntax(_))));
        assert!(matches!(problem("not a url"), Some(UrlProblem::Syntax(_))));
        let e = Target::parse("ftp://m").err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("invalid URL \"ftp://m\": scheme ftp is not supported")
        );
    }

    #[test]
    fn scheme_relative_redirects_keep_the_scheme() {
        let https = target("https://a:1/api/v1/scheduler");
        let next = https.redirect("//b:2/api/v1/scheduler").ok();
        assert_eq!(
            next.as_ref().map(|t| (t.scheme(), t.authority(), t.path())),
            Some((Scheme::Https, "b:2".into(), "/api/v1/scheduler"))
        );
        let http = target("http://a:5050/master/state");
        assert_eq!(
            http.redirect("//b:5050/master/state")
                .map(|t| t.to_string()),
            Ok("http://b:5050/master/state".into())
        );
        // No port: the scheme's.
        assert_eq!(
            https.redirect("//b/x").map(|t| t.authority()),
            Ok("b:443".into())
        );
    }

    #[test]
    fn path_only_redirects_stay_on_the_host() {
        let t = target("https://a:1/api/v1/scheduler");
        assert_eq!(
            t.redirect("/elsewhere?q=1").map(|t| t.to_string()),
            Ok("https://a:1/elsewhere?q=1".into())
        );
        assert!(t.redirect("/bad path").is_err());
    }

    #[test]
    fn absolute_redirects_may_switch_scheme() {
        let t = target("http://a:5050/x");
        let next = t.redirect("https://c:3/api/v1/scheduler").ok();
        assert_eq!(
            next.map(|t| (t.scheme(), t.authority())),
            Some((Scheme::Https, "c:3".into()))
        );
        assert_eq!(
            target("https://a/x")
                .redirect("http://c:1/x")
                .map(|t| t.to_string()),
            Ok("http://c:1/x".into())
        );
    }

    #[test]
    fn unusable_locations_are_errors() {
        let t = target("http://a:5050/dir/file");
        assert!(t.redirect("other-file").is_err());
        assert!(t.redirect("").is_err());
        assert!(t.redirect("ftp://c/x").is_err());
        assert!(t.redirect("//").is_err());
        assert!(t.redirect("//u:p@b:2/x").is_err());
    }
}
