//! Deciding what a file is from its first bytes, against an allow-list. The client's file
//! name and `Content-Type` are never consulted: a PNG named `cat.mp4` is a PNG, and an
//! HTML page named `cat.png` is refused.

/// Bytes needed to decide (the longest signature read below).
pub const HEAD_LEN: usize = 64;

/// The accepted types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    Png,
    Jpeg,
    Gif,
    WebP,
    Mp4,
    WebM,
}

impl Sniffed {
    pub fn content_type(self) -> &'static str {
        match self {
            Sniffed::Png => "image/png",
            Sniffed::Jpeg => "image/jpeg",
            Sniffed::Gif => "image/gif",
            Sniffed::WebP => "image/webp",
            Sniffed::Mp4 => "video/mp4",
            Sniffed::WebM => "video/webm",
        }
    }

    pub fn is_video(self) -> bool {
        matches!(self, Sniffed::Mp4 | Sniffed::WebM)
    }
}

/// MP4 major brands accepted (ISO base media and MPEG-4 files; not QuickTime, HEIF/AVIF
/// pictures or other ISO-BMFF relatives).
const MP4_BRANDS: &[&[u8; 4]] = &[
    b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ",
    b"dash", b"mmp4", b"MSNV",
];

/// What `head` (the first bytes of the file, up to [`HEAD_LEN`]) is, if it is allowed.
pub fn sniff(head: &[u8]) -> Option<Sniffed> {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some(Sniffed::Png);
    }
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(Sniffed::Jpeg);
    }
    if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        return Some(Sniffed::Gif);
    }
    if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return Some(Sniffed::WebP);
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        let brand = &head[8..12];
        return MP4_BRANDS
            .iter()
            .any(|b| &b[..] == brand)
            .then_some(Sniffed::Mp4);
    }
    if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        // EBML: Matroska and WebM share it; the DocType element (0x42 0x82) says which.
        let doc_type = head.windows(7).any(|w| w == b"\x42\x82\x84webm");
        return doc_type.then_some(Sniffed::WebM);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some(Sniffed::Png));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(Sniffed::Jpeg));
        assert_eq!(sniff(b"GIF89a\x01\0"), Some(Sniffed::Gif));
        assert_eq!(sniff(b"RIFF\x10\0\0\0WEBPVP8 "), Some(Sniffed::WebP));
        assert_eq!(
            sniff(b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2"),
            Some(Sniffed::Mp4)
        );
        assert_eq!(sniff(b"\0\0\0\x18ftypqt  \0\0\0\0"), None, "QuickTime");
        assert_eq!(sniff(b"\0\0\0\x18ftypheic\0\0\0\0"), None, "HEIF picture");
        let webm = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm";
        assert_eq!(sniff(webm), Some(Sniffed::WebM));
        let mkv = b"\x1a\x45\xdf\xa3\x9f\x42\x82\x88matroska";
        assert_eq!(sniff(mkv), None);
        assert_eq!(sniff(b"<!doctype html><html>"), None);
        assert_eq!(sniff(b"\x89PN"), None, "too short to tell");
        assert_eq!(sniff(b""), None);
    }
}
