//! As much HTTP/1.1 as the demo needs, as pure functions over bytes: the server's request heads and
//! its one response, the client's request and the status line it reads back, and `http://` URLs.

use std::fmt;
use std::str::FromStr;

/// The largest request head the server reads before it gives up on a connection.
pub const MAX_HEAD: usize = 16 * 1024;

/// What the server's answer is: the same small body on every path.
const BODY: &str = "ok\n";

/// Why a request head, a status line or a URL is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("the request line is not `METHOD PATH HTTP/1.x`")]
    RequestLine,
    #[error("the status line is not `HTTP/1.x CODE ...`")]
    StatusLine,
    #[error("a header line has no ':'")]
    Header,
    #[error("Content-Length is not a number")]
    ContentLength,
    #[error("chunked request bodies are not supported")]
    Chunked,
    #[error("{0:?} is not an http://host[:port][/path] URL")]
    Url(String),
}

/// The parts of a request head the server acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    /// Whether the connection stays open after the response (HTTP/1.1 unless `Connection: close`).
    pub keep_alive: bool,
    /// Body bytes that follow the head and must be read past before the next request.
    pub content_length: usize,
}

/// Where a request head ends (just after its blank line), once `buf` holds all of it.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Parses a request head (request line and headers, with or without its blank line).
pub fn parse_request(head: &[u8]) -> Result<RequestHead, HttpError> {
    let text = std::str::from_utf8(head).map_err(|_| HttpError::RequestLine)?;
    let mut lines = text.split("\r\n");
    let mut parts = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(path), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::RequestLine);
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(HttpError::RequestLine),
    };
    if method.is_empty() || !path.starts_with('/') && path != "*" && !path.starts_with("http") {
        return Err(HttpError::RequestLine);
    }
    let mut head =
        RequestHead { method: method.to_owned(), path: path.to_owned(), keep_alive: http11, content_length: 0 };
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(HttpError::Header)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                head.keep_alive = false;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                head.keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.parse().map_err(|_| HttpError::ContentLength)?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::Chunked);
        }
    }
    Ok(head)
}

/// The server's answer to every request.
pub fn ok_response(keep_alive: bool) -> String {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n{BODY}",
        BODY.len()
    )
}

/// The server's answer to a head it cannot read; the connection is closed after it.
pub fn bad_request() -> &'static str {
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
}

/// The client's request: one GET per connection, so every call connects (and resolves) anew.
pub fn get_request(url: &Url) -> String {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: causely-demo\r\nConnection: close\r\n\r\n",
        url.path,
        url.authority()
    )
}

/// The status code of a response, from its first line.
pub fn parse_status(head: &[u8]) -> Result<u16, HttpError> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = std::str::from_utf8(line).map_err(|_| HttpError::StatusLine)?.trim_end_matches('\r');
    let mut parts = line.splitn(3, ' ');
    match (parts.next(), parts.next()) {
        (Some("HTTP/1.1" | "HTTP/1.0"), Some(code)) if code.len() == 3 => {
            code.parse().map_err(|_| HttpError::StatusLine)
        }
        _ => Err(HttpError::StatusLine),
    }
}

/// An `http://` URL: the only kind the client calls (a demo Service speaks plain HTTP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Name or address, without the brackets of an IPv6 literal.
    pub host: String,
    pub port: u16,
    /// Path and query, starting with '/'.
    pub path: String,
}

impl Url {
    /// `host[:port]` as the Host header writes it.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == 80 { host } else { format!("{host}:{}", self.port) }
    }
}

impl FromStr for Url {
    type Err = HttpError;

    fn from_str(text: &str) -> Result<Url, HttpError> {
        let bad = || HttpError::Url(text.to_owned());
        let rest = text.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') || path.contains(char::is_whitespace) {
            return Err(bad());
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or_else(bad)?;
                (host, after.strip_prefix(':'))
            }
            None => match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(bad)?,
            None => 80,
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(bad());
        }
        Ok(Url { host: host.to_owned(), port, path: path.to_owned() })
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_head_is_complete_only_after_its_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nnext"), Some(18));
    }

    #[test]
    fn http_1_1_keeps_the_connection_unless_told_to_close() {
        let head = parse_request(b"GET /a?b=1 HTTP/1.1\r\nHost: web\r\n\r\n").unwrap();
        assert_eq!(
            head,
            RequestHead { method: "GET".into(), path: "/a?b=1".into(), keep_alive: true, content_length: 0 }
        );
        assert!(!parse_request(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").unwrap().keep_alive);
        assert!(!parse_request(b"GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(parse_request(b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n").unwrap().keep_alive);
    }

    #[test]
    fn a_body_length_is_read_and_chunked_bodies_are_refused() {
        assert_eq!(parse_request(b"POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n").unwrap().content_length, 12);
        assert_eq!(parse_request(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), Err(HttpError::ContentLength));
        assert_eq!(parse_request(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), Err(HttpError::Chunked));
    }

    #[test]
    fn garbage_is_not_a_request() {
        for bad in
            [&b"hello\r\n\r\n"[..], b"GET /\r\n\r\n", b"GET / HTTP/2\r\n\r\n", b"GET / HTTP/1.1\r\nnocolon\r\n\r\n"]
        {
            assert!(parse_request(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_response_says_how_long_its_body_is() {
        let r = ok_response(false);
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(
            r.contains("Content-Length: 3\r\n") && r.contains("Connection: close\r\n") && r.ends_with("\r\n\r\nok\n")
        );
        assert_eq!(parse_status(r.as_bytes()), Ok(200));
        assert_eq!(parse_status(bad_request().as_bytes()), Ok(400));
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH\r\n"), Err(HttpError::StatusLine));
    }

    #[test]
    fn urls_name_host_port_and_path() {
        let u: Url = "http://web.causely-demo.svc:8080/".parse().unwrap();
        assert_eq!(u, Url { host: "web.causely-demo.svc".into(), port: 8080, path: "/".into() });
        assert_eq!(u.to_string(), "http://web.causely-demo.svc:8080/");
        let u: Url = "http://web".parse().unwrap();
        assert_eq!((u.port, u.path.as_str(), u.authority()), (80, "/", "web".to_owned()));
        let u: Url = "http://[::1]:9000/x?y".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port, u.authority()), ("::1", 9000, "[::1]:9000".to_owned()));
        assert_eq!(
            get_request(&u),
            "GET /x?y HTTP/1.1\r\nHost: [::1]:9000\r\nUser-Agent: causely-demo\r\nConnection: close\r\n\r\n"
        );
        for bad in
            ["https://web/", "web:80", "http://", "http://:80/", "http://web:0/", "http://web:99999/", "http://u@web/"]
        {
            assert!(bad.parse::<Url>().is_err(), "{bad}");
        }
    }
}
