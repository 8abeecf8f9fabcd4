//! The WebSocket framing of an upgraded connection: a [`Reader`] (`Stream` of
//! [`Inbound`]) and a [`Writer`] (`Sink` of [`Outbound`]) over the two halves of the
//! connection, framed by actix-http's WebSocket codec.
//!
//! Why not actix-ws: it leaves the socket inside actix-http's HTTP/1 dispatcher, which
//! keeps two 8 KiB buffers per connection for life (constants, no setting), more than
//! an idle socket's whole budget. Here an idle socket holds a 1 KiB read buffer and no
//! write buffer; both grow for a burst and are given back once it has gone through.

use crate::{connection::Inbound, hub::Outbound};
use actix_http::ws::{CloseCode, CloseReason, Codec, Frame, Item, Message, ProtocolError};
use bytes::{Bytes, BytesMut};
use futures_util::{Sink, Stream};
use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Decoder, Encoder};

/// What a read asks for at least: client frames are small (a `send` is a few hundred
/// bytes), and an idle socket holds this much.
const READ_CHUNK: usize = 1024;
/// A write buffer at most this large is kept for the next flush; a larger one (a history
/// page, a burst of deliveries) is given back once written.
const WRITE_KEEP: usize = 1024;
/// Frames queued past this many bytes are written before more are taken.
const WRITE_HIGH: usize = 64 * 1024;

/// Incoming frames, continuations joined, each at most `max` bytes.
pub struct Reader<R> {
    io: R,
    buf: BytesMut,
    /// The buffer grew past [`READ_CHUNK`] for a large frame: replace it once empty.
    grown: bool,
    codec: Codec,
    max: usize,
    /// A fragmented message being joined: (is text, bytes so far).
    partial: Option<(bool, BytesMut)>,
    done: bool,
}

impl<R> Reader<R> {
    /// `read` holds bytes that arrived behind the handshake, if any.
    pub fn new(io: R, read: &[u8], max: usize) -> Reader<R> {
        Reader {
            io,
            buf: BytesMut::from(read),
            grown: false,
            codec: Codec::new().max_size(max),
            max,
            partial: None,
            done: false,
        }
    }

    /// One decoded frame as the connection sees it; `None` for a fragment that only
    /// extends a message still being joined.
    fn on_frame(&mut self, frame: Frame) -> Option<Inbound> {
        match frame {
            Frame::Text(bytes) => Some(text(&bytes)),
            Frame::Binary(_) => Some(Inbound::Binary),
            Frame::Ping(p) => Some(Inbound::Ping(p.to_vec())),
            Frame::Pong(_) => Some(Inbound::Pong),
            Frame::Close(_) => Some(Inbound::Close),
            Frame::Continuation(item) => self.join(item),
        }
    }

    fn join(&mut self, item: Item) -> Option<Inbound> {
        let (start, last, bytes) = match item {
            Item::FirstText(b) => (Some(true), false, b),
            Item::FirstBinary(b) => (Some(false), false, b),
            Item::Continue(b) => (None, false, b),
            Item::Last(b) => (None, true, b),
        };
        if let Some(is_text) = start {
            self.partial = Some((is_text, BytesMut::new()));
        }
        let Some((_, joined)) = self.partial.as_mut() else {
            // The codec refuses a continuation that was not started; kept as a guard.
            return Some(Inbound::Broken("continuation not started".into()));
        };
        if joined.len() + bytes.len() > self.max {
            self.partial = None;
            return Some(Inbound::TooLarge);
        }
        joined.extend_from_slice(&bytes);
        if !last {
            return None;
        }
        let (is_text, joined) = self.partial.take()?;
        Some(if is_text {
            text(&joined)
        } else {
            Inbound::Binary
        })
    }

    /// The read buffer for the next read: a fresh small one when the last large frame
    /// has been consumed, room for the rest of a partial frame otherwise.
    fn make_room(&mut self) {
        if self.buf.is_empty() && self.grown {
            self.buf = BytesMut::new();
            self.grown = false;
        }
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            // A partial frame: double what is there, so a large frame takes few reads.
            let more = self.buf.len().max(READ_CHUNK);
            self.grown |= !self.buf.is_empty();
            self.buf.reserve(more);
        }
    }
}

fn text(bytes: &[u8]) -> Inbound {
    match std::str::from_utf8(bytes) {
        Ok(s) => Inbound::Text(s.to_owned()),
        Err(_) => Inbound::Broken("text frame is not UTF-8".into()),
    }
}

impl<R: AsyncRead + Unpin> Stream for Reader<R> {
    type Item = Inbound;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Inbound>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match this.codec.decode(&mut this.buf) {
                Ok(Some(frame)) => match this.on_frame(frame) {
                    Some(item) => {
                        if matches!(item, Inbound::TooLarge | Inbound::Broken(_)) {
                            this.done = true;
                        }
                        return Poll::Ready(Some(item));
                    }
                    None => continue,
                },
                Ok(None) => {}
                Err(ProtocolError::Overflow) => {
                    this.done = true;
                    return Poll::Ready(Some(Inbound::TooLarge));
                }
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Inbound::Broken(e.to_string())));
                }
            }
            this.make_room();
            match ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut this.io),
                cx,
                &mut this.buf
            )) {
                Ok(0) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Ok(_) => {}
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Inbound::Broken(e.to_string())));
                }
            }
        }
    }
}

/// Outgoing frames: encoded into one buffer as they are fed, written on flush, so frames
/// queued together leave in one write.
pub struct Writer<W> {
    io: W,
    buf: BytesMut,
    /// How much of `buf` has been written (not `advance`d, so `capacity` stays the size
    /// of the allocation and the keep-or-release choice is right).
    written: usize,
    codec: Codec,
}

impl<W> Writer<W> {
    pub fn new(io: W) -> Writer<W> {
        Writer {
            io,
            buf: BytesMut::new(),
            written: 0,
            codec: Codec::new(),
        }
    }
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.written = 0;
        if self.buf.capacity() > WRITE_KEEP {
            self.buf = BytesMut::new();
        } else {
            self.buf.clear();
        }
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> Sink<Outbound> for Writer<W> {
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.buf.len() >= WRITE_HIGH {
            ready!(this.poll_write_out(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Outbound) -> io::Result<()> {
        let this = self.get_mut();
        let message = match item {
            Outbound::Text(text) => Message::Text(text),
            Outbound::Ping(p) => Message::Ping(Bytes::from(p)),
            Outbound::Pong(p) => Message::Pong(Bytes::from(p)),
            Outbound::Close(frame) => Message::Close(Some(CloseReason {
                code: CloseCode::from(frame.code),
                description: (!frame.reason.is_empty()).then_some(frame.reason),
            })),
        };
        this.codec
            .encode(message, &mut this.buf)
            .map_err(|e| io::Error::other(e.to_string()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
