//! `serve`: answers 200 to every request on any path, keep-alive included, and logs nothing per
//! request (a demo server that logs each call would flood the node's logs at two calls a second).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::http;

/// Serves on `listen` until SIGTERM.
pub async fn run(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
    tracing::info!(%listen, "serving");
    tokio::select! {
        () = serve(listener) => Ok(()),
        () = causely_runtime::shutdown() => Ok(()),
    }
}

/// Accepts connections for ever; each is served on a task of its own.
pub async fn serve(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(async move {
                    // A peer that goes away mid-request is its own business.
                    let _ = connection(stream).await;
                });
            }
            // Out of file descriptors, or a connection reset before accept: not a reason to stop.
            Err(err) => {
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads requests off one connection and answers each, until the peer closes or asks to.
async fn connection(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(end) = http::head_end(&buf) {
                break end;
            }
            if buf.len() > http::MAX_HEAD {
                return stream.write_all(http::bad_request().as_bytes()).await;
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let Ok(head) = http::parse_request(&buf[..end]) else {
            return stream.write_all(http::bad_request().as_bytes()).await;
        };
        // Skip the body, keeping whatever follows it (a pipelined next request).
        let mut body_left = head.content_length;
        let buffered = (buf.len() - end).min(body_left);
        buf.drain(..end + buffered);
        body_left -= buffered;
        while body_left > 0 {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            let body = n.min(body_left);
            body_left -= body;
            buf.extend_from_slice(&chunk[body..n]);
        }
        stream.write_all(http::ok_response(head.keep_alive).as_bytes()).await?;
        if !head.keep_alive {
            return stream.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener));
        addr
    }

    /// Reads `count` whole responses (each ends with the 3-byte body) or until the server closes.
    async fn read_responses(stream: &mut TcpStream, count: usize) -> String {
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        while String::from_utf8_lossy(&got).matches("\r\n\r\nok\n").count() < count {
            let n = stream.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8(got).unwrap()
    }

    #[tokio::test]
    async fn any_path_gets_200_and_the_connection_stays_open_until_the_client_closes_it() {
        let mut stream = TcpStream::connect(server().await).await.unwrap();
        stream.write_all(b"GET /anything/at/all HTTP/1.1\r\nHost: web\r\n\r\n").await.unwrap();
        let first = read_responses(&mut stream, 1).await;
        assert_eq!(first, http::ok_response(true));
        stream.write_all(b"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut rest = String::new();
        stream.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, http::ok_response(false), "answered, then closed");
    }

    #[tokio::test]
    async fn a_request_body_is_skipped_and_a_pipelined_request_after_it_is_answered() {
        let mut stream = TcpStream::connect(server().await).await.unwrap();
        stream
            .write_all(
                b"POST /in HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /next HTTP/1.1\r\nConnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        let mut all = String::new();
        stream.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, http::ok_response(true) + &http::ok_response(false));
    }

    #[tokio::test]
    async fn garbage_gets_400_and_the_connection_is_closed() {
        let mut stream = TcpStream::connect(server().await).await.unwrap();
        stream.write_all(b"HELLO THERE\r\n\r\n").await.unwrap();
        let mut all = String::new();
        stream.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, http::bad_request());
    }

    #[tokio::test]
    async fn the_client_gets_200_from_the_server_by_name() {
        let addr = server().await;
        let url: http::Url = format!("http://localhost:{}/", addr.port()).parse().unwrap();
        assert_eq!(crate::call::get(&url).await.unwrap(), 200);
    }
}
