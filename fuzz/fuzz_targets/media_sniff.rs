//! The upload sniffer (`http_app::media::sniff::sniff`): the first bytes of an uploaded
//! file decide whether it is accepted and as what.
//!
//! Invariants: never panics, and every accepted type really carries its signature at the
//! start (nothing else is ever let through as a picture or a video).

#![no_main]

use http_app::media::sniff::{HEAD_LEN, Sniffed, sniff};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The upload route reads at most HEAD_LEN bytes before deciding; also try the whole
    // input, in case a caller ever passes more.
    let head = &data[..data.len().min(HEAD_LEN)];
    for input in [head, data] {
        let Some(kind) = sniff(input) else { continue };
        let ok = match kind {
            Sniffed::Png => input.starts_with(b"\x89PNG\r\n\x1a\n"),
            Sniffed::Jpeg => input.starts_with(&[0xFF, 0xD8, 0xFF]),
            Sniffed::Gif => input.starts_with(b"GIF87a") || input.starts_with(b"GIF89a"),
            Sniffed::WebP => input.starts_with(b"RIFF") && input.get(8..12) == Some(b"WEBP"),
            Sniffed::Mp4 => input.get(4..8) == Some(b"ftyp"),
            Sniffed::WebM => {
                input.starts_with(&[0x1A, 0x45, 0xDF, 0xA3])
                    && input.windows(5).any(|w| w == b"\x84webm")
            }
        };
        assert!(ok, "{kind:?} without its signature: {input:?}");
        assert!(
            kind.content_type()
                .starts_with(if kind.is_video() { "video/" } else { "image/" })
        );
    }
});
