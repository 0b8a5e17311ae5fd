//! MQTT over WebSocket (`ws`, and `wss` after TLS): the HTTP upgrade on path [`MQTT_PATH`] with
//! the `mqtt` subprotocol, and [`WsStream`], which turns the message stream back into bytes.
//!
//! MQTT packets are carried in binary messages; a packet may span several messages and one
//! message may hold several packets, so the adapter is a plain byte stream and framing stays in
//! the connection code. tungstenite answers pings itself (pongs go out on the next read or
//! write), a close frame reads as EOF and a text message is an error (MQTT-6.0.0-1).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// The only request path upgraded; anything else gets `404 Not Found`.
pub(super) const MQTT_PATH: &str = "/mqtt";

/// The WebSocket subprotocol name MQTT registers (MQTT-6.0.0-3, -4).
const SUBPROTOCOL: &str = "mqtt";

/// Runs the server side of the WebSocket upgrade on `stream`.
///
/// # Errors
///
/// An I/O error when the request is malformed, targets another path than [`MQTT_PATH`], offers
/// subprotocols without `mqtt`, or the socket fails; the HTTP error response is sent first.
pub(super) async fn accept<S>(stream: S) -> io::Result<WsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ws = tokio_tungstenite::accept_hdr_async(stream, check_upgrade)
        .await
        .map_err(ws_to_io)?;
    Ok(WsStream::new(ws))
}

/// Handshake callback: accepts `/mqtt` and picks the `mqtt` subprotocol.
#[allow(
    clippy::result_large_err,
    reason = "signature set by tungstenite's `Callback`"
)]
fn check_upgrade(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    if req.uri().path() != MQTT_PATH {
        return Err(error_response(StatusCode::NOT_FOUND, "not found"));
    }
    let mut offered = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .peekable();
    if offered.peek().is_none() {
        return Ok(resp);
    }
    if offered.any(|p| p == SUBPROTOCOL) {
        resp.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
        Ok(resp)
    } else {
        Err(error_response(
            StatusCode::BAD_REQUEST,
            "subprotocol mqtt required",
        ))
    }
}

fn error_response(status: StatusCode, body: &str) -> ErrorResponse {
    let mut resp = ErrorResponse::new(Some(body.to_owned()));
    *resp.status_mut() = status;
    resp
}

/// Maps a tungstenite error onto the `io::Error` the byte-stream interface needs.
fn ws_to_io(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        WsError::ConnectionClosed | WsError::AlreadyClosed => io::ErrorKind::BrokenPipe.into(),
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

/// A WebSocket connection seen as a byte stream (tokio `AsyncRead + AsyncWrite`).
///
/// Each `poll_write` sends one binary message; `poll_shutdown` sends a close frame, then shuts
/// the underlying stream's write side.
#[derive(Debug)]
pub(super) struct WsStream<S> {
    /// The message stream.
    inner: WebSocketStream<S>,
    /// Unread remainder of the last binary message.
    pending: Bytes,
    /// A close frame or the end of the stream was seen: reads return EOF from now on.
    read_eof: bool,
    /// Our close frame has been sent and flushed.
    close_sent: bool,
}

impl<S> WsStream<S> {
    fn new(inner: WebSocketStream<S>) -> Self {
        Self {
            inner,
            pending: Bytes::new(),
            read_eof: false,
            close_sent: false,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.read_eof || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
                Some(Ok(Message::Binary(data))) => this.pending = data,
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | None => this.read_eof = true,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text WebSocket message on an MQTT connection",
                    )));
                }
                Some(Err(e)) => return Poll::Ready(Err(ws_to_io(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let inner = &mut self.get_mut().inner;
        ready!(Pin::new(&mut *inner).poll_ready(cx)).map_err(ws_to_io)?;
        Pin::new(inner)
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(ws_to_io)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner)
            .poll_flush(cx)
            .map_err(ws_to_io)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_sent {
            ready!(Pin::new(&mut this.inner).poll_close(cx)).map_err(ws_to_io)?;
            this.close_sent = true;
        }
        Pin::new(this.inner.get_mut()).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    use super::*;
    use crate::config::ListenerKind;
    use crate::listener::testutil;

    async fn ws_client(
        addr: std::net::SocketAddr,
        path: &str,
        protocol: Option<&str>,
    ) -> Result<WebSocketStream<TcpStream>, WsError> {
        let mut req = format!("ws://{addr}{path}").into_client_request()?;
        if let Some(p) = protocol {
            req.headers_mut().insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_str(p).unwrap(),
            );
        }
        let tcp = TcpStream::connect(addr).await?;
        let (ws, resp) = tokio_tungstenite::client_async(req, tcp).await?;
        if protocol.is_some() {
            assert_eq!(resp.headers()[header::SEC_WEBSOCKET_PROTOCOL], SUBPROTOCOL);
        }
        Ok(ws)
    }

    async fn next_binary<S: AsyncRead + AsyncWrite + Unpin>(
        ws: &mut WebSocketStream<S>,
    ) -> Vec<u8> {
        loop {
            match ws.next().await.unwrap().unwrap() {
                Message::Binary(b) => return b.to_vec(),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn bytes_round_trip_across_message_boundaries() {
        let server = testutil::start(ListenerKind::Ws, 0).await;
        let mut ws = ws_client(server.addr, MQTT_PATH, Some("mqtt"))
            .await
            .unwrap();

        // One "packet" split over two messages, then two in one message.
        ws.send(Message::binary(&b"hel"[..])).await.unwrap();
        ws.send(Message::binary(&b"lo\n"[..])).await.unwrap();
        let mut got = Vec::new();
        while got.len() < 6 {
            got.extend(next_binary(&mut ws).await);
        }
        assert_eq!(got, b"hello\n");
        ws.send(Message::Ping(Bytes::from_static(b"p")))
            .await
            .unwrap();
        ws.send(Message::binary(&b"a\nb\n"[..])).await.unwrap();
        let mut got = Vec::new();
        while got.len() < 4 {
            got.extend(next_binary(&mut ws).await);
        }
        assert_eq!(got, b"a\nb\n");

        // Our close frame ends the echo handler, which shuts the stream down: close comes back.
        ws.close(None).await.unwrap();
        while let Some(msg) = ws.next().await {
            if matches!(msg, Ok(Message::Close(_)) | Err(_)) {
                break;
            }
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn client_without_subprotocol_is_accepted() {
        let server = testutil::start(ListenerKind::Ws, 0).await;
        let mut ws = ws_client(server.addr, MQTT_PATH, None).await.unwrap();
        ws.send(Message::binary(&b"x\n"[..])).await.unwrap();
        assert_eq!(next_binary(&mut ws).await, b"x\n");
        server.stop().await;
    }

    #[tokio::test]
    async fn wrong_path_and_wrong_subprotocol_are_refused() {
        let server = testutil::start(ListenerKind::Ws, 0).await;
        match ws_client(server.addr, "/other", Some("mqtt")).await {
            Err(WsError::Http(resp)) => assert_eq!(resp.status(), StatusCode::NOT_FOUND),
            other => panic!("expected 404, got {other:?}"),
        }
        match ws_client(server.addr, MQTT_PATH, Some("chat, superchat")).await {
            Err(WsError::Http(resp)) => assert_eq!(resp.status(), StatusCode::BAD_REQUEST),
            other => panic!("expected 400, got {other:?}"),
        }
        assert!(server.peers.lock().unwrap().is_empty());
        server.stop().await;
    }

    #[tokio::test]
    async fn text_message_is_a_read_error() {
        let (client, server) = tokio::io::duplex(4096);
        let server = tokio::spawn(accept(server));
        let (mut ws, _) = tokio_tungstenite::client_async("ws://localhost/mqtt", client)
            .await
            .unwrap();
        let mut stream = server.await.unwrap().unwrap();
        ws.send(Message::text("hi")).await.unwrap();
        let mut buf = [0u8; 8];
        let err = stream.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        // Writing still works, and shutdown sends a close frame the client sees.
        stream.write_all(b"z").await.unwrap();
        stream.shutdown().await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::binary(&b"z"[..])
        );
        assert!(matches!(ws.next().await, Some(Ok(Message::Close(_)))));
    }

    #[tokio::test]
    async fn wss_is_tls_then_websocket() {
        let pki = testutil::TestPki::new();
        let mut cfg = testutil::listener_config(ListenerKind::Wss, 0);
        cfg.tls = Some(pki.server_tls(true));
        let server = testutil::start_with(cfg).await;
        let tls = pki
            .connect(server.addr, Some(pki.client_cert("ws1")))
            .await
            .unwrap();
        let mut req = "wss://localhost/mqtt".into_client_request().unwrap();
        req.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("mqtt"),
        );
        let (mut ws, _) = tokio_tungstenite::client_async(req, tls).await.unwrap();
        ws.send(Message::binary(&b"s\n"[..])).await.unwrap();
        assert_eq!(next_binary(&mut ws).await, b"s\n");
        let peer = server.peers.lock().unwrap()[0].clone();
        assert_eq!(peer.tls_subject.as_deref(), Some("CN=ws1,O=Acme"));
        server.stop().await;
    }
}
