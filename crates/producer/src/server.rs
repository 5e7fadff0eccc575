//! The HTTP server: accepts connections and serves each with hyper's HTTP/1 server.
//!
//! Unlike `axum::serve`, it bounds the time a client may take to send a request's headers
//! (hyper's header read timeout, [`HEADER_READ_TIMEOUT`]; it also closes a keep-alive
//! connection that stays idle that long), so connections that send nothing cannot pile up.
//! Bodies are bounded by the handlers (`limits::read_body`).
//!
//! With TLS, each connection's handshake runs in its own task, bounded by the same
//! timeout, so a slow handshake delays no one else.
//!
//! Shutdown: stop accepting, ask every connection to finish its in-flight request and close
//! (hyper's graceful shutdown), then wait for them. Dropping the future aborts every
//! connection: they live in its `JoinSet`.

use std::time::Duration;

use axum::Router;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use redline_core::Shutdown;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinSet,
};
use tokio_rustls::TlsAcceptor;

/// How long a client may take to send a request's headers, and how long a keep-alive
/// connection may stay idle. Longer than Telegraf's default 10 s flush interval, so an
/// agent's connection is reused between flushes.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` (over TLS with `tls`) until `shutdown`, then lets in-flight
/// requests finish.
///
/// # Errors
/// None so far: accept errors (e.g. out of file descriptors) are logged and retried.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    // Tells every connection to finish; the sender is dropped after the accept loop.
    let (closing_tx, closing_rx) = watch::channel(false);
    // Every connection task; aborted if this future is dropped.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.wait() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let (app, closing) = (app.clone(), closing_rx.clone());
                    match &tls {
                        None => {
                            connections.spawn(connection(stream, app, closing));
                        }
                        Some(acceptor) => {
                            connections.spawn(handshake(acceptor.clone(), stream, app, closing));
                        }
                    }
                }
                Err(error) => {
                    // EMFILE and the like: back off rather than spin.
                    tracing::warn!(%error, "Cannot accept a connection; retrying.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = closing_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// The TLS handshake, then the connection; a failed or slow handshake only closes it.
async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    app: Router,
    closing: watch::Receiver<bool>,
) {
    match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => connection(tls, app, closing).await,
        Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed."),
        Err(_) => tracing::debug!("TLS handshake timed out."),
    }
}

/// The most a connection buffers before the handler reads it; headers must fit.
const READ_BUFFER: usize = 16 * 1024;

/// Serves one connection until the client closes it, an error, or `closing` (then the
/// in-flight request is finished first).
async fn connection<I>(io: I, app: Router, mut closing: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        // What a connection reads ahead of the handler stays small: a request waiting for
        // its turn holds this much of its body, not what hyper's buffer would grow to
        // (400 KiB each by default; a thousand waiting connections make that 400 MiB).
        .max_buf_size(READ_BUFFER);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut asked_to_close = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "HTTP connection ended with an error.");
                }
                return;
            }
            _ = closing.wait_for(|closing| *closing), if !asked_to_close => {
                asked_to_close = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
