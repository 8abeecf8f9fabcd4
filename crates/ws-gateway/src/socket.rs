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
    /// Bytes read into `buf`'s allocation: past [`READ_CHUNK`] it may have grown (the
    /// codec reserves a large frame's length), so it is replaced once empty.
    read_into: usize,
    codec: Codec,
    max: usize,
    /// A fragmented message being joined: (is text, bytes so far).
    partial: Option<(bool, BytesMut)>,
    done: bool,
}

impl<R> Reader<R> {
    /// `read` holds bytes that arrived behind the handshake, if any.
    pub fn new(io: R, read: BytesMut, max: usize) -> Reader<R> {
        Reader {
            io,
            read_into: read.len(),
            buf: read,
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

    /// The read buffer for the next read: a fresh small one once a burst or a large frame
    /// has been consumed, room for the rest of a partial frame otherwise.
    fn make_room(&mut self) {
        if self.buf.is_empty() && self.read_into > READ_CHUNK {
            self.buf = BytesMut::new();
            self.read_into = 0;
        }
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            // A partial frame: double what is there, so a large frame takes few reads.
            self.buf.reserve(self.buf.len().max(READ_CHUNK));
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
                Ok(n) => this.read_into += n,
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A client's (masked) frames, from one codec: continuations need its state.
    struct Client(Codec);

    impl Client {
        fn new() -> Client {
            Client(Codec::new().client_mode())
        }

        fn frame(&mut self, message: Message) -> BytesMut {
            let mut out = BytesMut::new();
            self.0.encode(message, &mut out).expect("encode");
            out
        }
    }

    fn client(message: Message) -> BytesMut {
        Client::new().frame(message)
    }

    fn text(s: &str) -> Message {
        Message::Text(s.into())
    }

    fn part(item: Item) -> Message {
        Message::Continuation(item)
    }

    fn expect_text(item: Option<Inbound>, want: &str) {
        match item {
            Some(Inbound::Text(t)) => assert_eq!(t, want),
            other => panic!("expected text {want:?}, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn frames_behind_the_handshake_and_fragments_arrive_whole_and_in_order() {
        let (mut peer, ours) = tokio::io::duplex(64 * 1024);
        let early = client(text("first"));
        let mut reader = Reader::new(ours, early, 1024);
        let mut c = Client::new();
        let mut wire = BytesMut::new();
        wire.extend(c.frame(part(Item::FirstText(Bytes::from_static(b"he")))));
        // A control frame may come between the fragments of a message.
        wire.extend(c.frame(Message::Ping(Bytes::from_static(b"p"))));
        wire.extend(c.frame(part(Item::Continue(Bytes::from_static(b"ll")))));
        wire.extend(c.frame(part(Item::Last(Bytes::from_static(b"o")))));
        wire.extend(c.frame(Message::Binary(Bytes::from_static(b"\x00"))));
        wire.extend(c.frame(Message::Close(None)));
        // Byte by byte: every frame boundary falls mid-read somewhere.
        for byte in wire.iter() {
            peer.write_all(&[*byte]).await.expect("write");
        }
        drop(peer);
        expect_text(reader.next().await, "first");
        assert!(matches!(reader.next().await, Some(Inbound::Ping(p)) if p == b"p"));
        expect_text(reader.next().await, "hello");
        assert!(matches!(reader.next().await, Some(Inbound::Binary)));
        assert!(matches!(reader.next().await, Some(Inbound::Close)));
        assert!(reader.next().await.is_none(), "the peer hung up");
    }

    #[tokio::test]
    async fn the_size_limit_holds_for_one_frame_and_for_a_joined_message() {
        let mut c = Client::new();
        let joined = [
            c.frame(part(Item::FirstText(Bytes::from_static(b"012345")))),
            c.frame(part(Item::Last(Bytes::from_static(b"6789ab")))),
        ]
        .concat();
        for wire in [client(text("0123456789ab")).to_vec(), joined] {
            let (mut peer, ours) = tokio::io::duplex(1024);
            let mut reader = Reader::new(ours, BytesMut::new(), 10);
            peer.write_all(&wire).await.expect("write");
            assert!(matches!(reader.next().await, Some(Inbound::TooLarge)));
            assert!(reader.next().await.is_none(), "nothing after a refusal");
        }
        // At the limit exactly, joined: accepted.
        let (mut peer, ours) = tokio::io::duplex(1024);
        let mut reader = Reader::new(ours, BytesMut::new(), 10);
        let mut c = Client::new();
        peer.write_all(&c.frame(part(Item::FirstText(Bytes::from_static(b"01234")))))
            .await
            .expect("write");
        peer.write_all(&c.frame(part(Item::Last(Bytes::from_static(b"56789")))))
            .await
            .expect("write");
        expect_text(reader.next().await, "0123456789");
    }

    #[tokio::test]
    async fn bad_frames_break_the_socket_with_a_reason() {
        let unmasked = {
            let mut out = BytesMut::new();
            // The server-side codec writes unmasked frames, which a client must not send.
            Codec::new().encode(text("hi"), &mut out).expect("encode");
            out
        };
        let not_utf8 = client(Message::Text(
            bytestring::ByteString::try_from(Bytes::from_static(b"ok")).expect("utf-8"),
        ));
        let mut not_utf8 = not_utf8.to_vec();
        // Flip the masked payload's bytes so the unmasked text is not UTF-8.
        let n = not_utf8.len();
        not_utf8[n - 1] ^= 0x80;
        not_utf8[n - 2] ^= 0x80;
        for (wire, why) in [(unmasked.to_vec(), "unmasked"), (not_utf8, "UTF-8")] {
            let (mut peer, ours) = tokio::io::duplex(1024);
            let mut reader = Reader::new(ours, BytesMut::new(), 1024);
            peer.write_all(&wire).await.expect("write");
            match reader.next().await {
                Some(Inbound::Broken(reason)) => {
                    assert!(reason.contains(why), "{reason:?} should say {why}")
                }
                other => panic!("expected a broken socket, got {other:?}"),
            }
            assert!(reader.next().await.is_none());
        }
    }

    #[tokio::test]
    async fn a_burst_leaves_no_large_buffer_behind() {
        let (mut peer, ours) = tokio::io::duplex(256 * 1024);
        let (read, write) = tokio::io::split(ours);
        let mut reader = Reader::new(read, BytesMut::new(), 64 * 1024);
        let mut writer = Writer::new(write);

        // In: one 40 KB frame, then quiet.
        let big = "x".repeat(40_000);
        peer.write_all(&client(text(&big))).await.expect("write");
        expect_text(reader.next().await, &big);
        peer.write_all(&client(text("small"))).await.expect("write");
        expect_text(reader.next().await, "small");
        assert!(
            reader.buf.capacity() <= READ_CHUNK,
            "read buffer kept {} bytes",
            reader.buf.capacity()
        );

        // Out: a 40 KB frame and a small one, fed together, leave in order in one flush.
        writer
            .feed(Outbound::Text(big.clone().into()))
            .await
            .expect("feed");
        writer
            .feed(Outbound::Text("after".into()))
            .await
            .expect("feed");
        writer.flush().await.expect("flush");
        assert_eq!(writer.buf.capacity(), 0, "the burst's buffer is given back");
        writer
            .send(Outbound::Text("small".into()))
            .await
            .expect("send");
        assert!(writer.buf.capacity() <= WRITE_KEEP);

        let mut got = BytesMut::new();
        let mut codec = Codec::new().client_mode().max_size(64 * 1024);
        let mut frames = Vec::new();
        while frames.len() < 3 {
            peer.read_buf(&mut got).await.expect("read");
            while let Some(frame) = codec.decode(&mut got).expect("decode") {
                frames.push(frame);
            }
        }
        assert_eq!(
            frames,
            vec![
                Frame::Text(Bytes::from(big)),
                Frame::Text(Bytes::from_static(b"after")),
                Frame::Text(Bytes::from_static(b"small")),
            ]
        );
    }
}
