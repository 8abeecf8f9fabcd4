//! Turning a received upload into stored files. Blocking (decoding is CPU work): run it
//! on the blocking pool.
//!
//! Pictures are decoded with limits and encoded again in the same format, which drops
//! every piece of metadata (EXIF with its GPS position, XMP, comments); the EXIF
//! orientation is applied to the pixels first so photos stay upright. A thumbnail at
//! most [`THUMB_SIDE`] pixels on its longer side is made too. Animated GIFs keep their
//! frames; an animated WebP keeps its first frame only (no encoder for animated WebP).
//! Videos cannot be checked beyond their signature without a demuxer, so they are kept
//! byte for byte (`Content-Type` from the sniffed type, `nosniff`, and a sandboxing CSP
//! keep a disguised file harmless).

use super::{MediaDirs, MediaError, Stored, new_key, sniff::Sniffed};
use image::{
    AnimationDecoder, DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits,
    codecs::{
        gif::{GifDecoder, GifEncoder, Repeat},
        jpeg::JpegEncoder,
        png::PngEncoder,
        webp::WebPEncoder,
    },
};
use sha2::{Digest, Sha256};
use std::{
    fs::File,
    io::{BufReader, BufWriter, Write},
};
use tempfile::NamedTempFile;

/// Pictures with more pixels than this are refused before decoding (a small file can
/// declare a huge canvas: a decompression bomb).
pub const MAX_PIXELS: u64 = 40_000_000;
/// Nor may either side exceed this.
pub const MAX_SIDE: u32 = 16_384;
/// All frames of an animated GIF together, in pixels.
pub const MAX_ANIMATION_PIXELS: u64 = 100_000_000;
/// A thumbnail's longer side.
pub const THUMB_SIDE: u32 = 320;
/// What a decoder may allocate.
const MAX_DECODE_ALLOC: u64 = 512 * 1024 * 1024;

/// A received upload: the temporary file and what was learnt while streaming it.
pub struct Received {
    pub file: NamedTempFile,
    pub kind: Sniffed,
    pub size: u64,
    pub sha256: String,
}

/// What was stored.
#[derive(Debug)]
pub struct Processed {
    pub content_type: &'static str,
    pub size: u64,
    pub sha256: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub storage_key: String,
    pub thumbnail_key: Option<String>,
    /// The files now in place, to remove if the database refuses the row.
    pub stored: Stored,
}

/// Checks, re-encodes (pictures) and moves the upload into place.
pub fn store(received: Received, dirs: &MediaDirs) -> Result<Processed, MediaError> {
    let key = new_key()?;
    let mut stored = Stored::default();
    let result = if received.kind.is_video() {
        store_video(received, dirs, &key, &mut stored)
    } else {
        store_picture(received, dirs, &key, &mut stored)
    };
    if result.is_err() {
        // Nothing half-done stays: remove whatever was already renamed into place.
        for f in &stored.files {
            let _ = std::fs::remove_file(f);
        }
    }
    let mut processed = result?;
    processed.stored = stored;
    Ok(processed)
}

fn store_video(
    received: Received,
    dirs: &MediaDirs,
    key: &str,
    stored: &mut Stored,
) -> Result<Processed, MediaError> {
    let target = dirs.root.join(key);
    persist(received.file, &target, stored)?;
    Ok(Processed {
        content_type: received.kind.content_type(),
        size: received.size,
        sha256: received.sha256,
        width: None,
        height: None,
        storage_key: key.to_owned(),
        thumbnail_key: None,
        stored: Stored::default(),
    })
}

fn limits() -> Limits {
    let mut l = Limits::default();
    l.max_image_width = Some(MAX_SIDE);
    l.max_image_height = Some(MAX_SIDE);
    l.max_alloc = Some(MAX_DECODE_ALLOC);
    l
}

fn format_of(kind: Sniffed) -> ImageFormat {
    match kind {
        Sniffed::Png => ImageFormat::Png,
        Sniffed::Jpeg => ImageFormat::Jpeg,
        Sniffed::Gif => ImageFormat::Gif,
        _ => ImageFormat::WebP,
    }
}

fn decode_error(kind: Sniffed, e: ImageError) -> MediaError {
    match e {
        ImageError::Limits(_) => MediaError::TooLarge(format!(
            "the picture is too large to process (at most {MAX_SIDE} pixels a side and {} megapixels)",
            MAX_PIXELS / 1_000_000
        )),
        ImageError::IoError(e) if e.kind() != std::io::ErrorKind::UnexpectedEof => {
            MediaError::Io(e)
        }
        other => MediaError::Broken(format!(
            "the file is not a valid {}: {other}",
            kind.content_type()
        )),
    }
}

fn encode_error(e: ImageError) -> MediaError {
    match e {
        ImageError::IoError(e) => MediaError::Io(e),
        other => MediaError::Io(std::io::Error::other(other.to_string())),
    }
}

fn reader(received: &Received) -> Result<BufReader<File>, MediaError> {
    Ok(BufReader::new(received.file.reopen()?))
}

fn store_picture(
    received: Received,
    dirs: &MediaDirs,
    key: &str,
    stored: &mut Stored,
) -> Result<Processed, MediaError> {
    let kind = received.kind;
    let format = format_of(kind);
    // Dimensions first, from the header alone: a bomb is refused before any pixel is
    // allocated.
    let mut probe = ImageReader::with_format(reader(&received)?, format);
    probe.limits(limits());
    let (w, h) = probe.into_dimensions().map_err(|e| decode_error(kind, e))?;
    if w == 0 || h == 0 {
        return Err(MediaError::Broken("the picture has no pixels".into()));
    }
    if u64::from(w) * u64::from(h) > MAX_PIXELS || w > MAX_SIDE || h > MAX_SIDE {
        return Err(MediaError::TooLarge(format!(
            "the picture is {w}×{h}; at most {} megapixels and {MAX_SIDE} pixels a side are accepted",
            MAX_PIXELS / 1_000_000
        )));
    }
    if kind == Sniffed::Jpeg {
        check_jpeg_end(&received)?;
    }
    let mut out = Output::new(dirs)?;
    let first = if kind == Sniffed::Gif {
        reencode_gif(&received, &mut out)?
    } else {
        let mut r = ImageReader::with_format(reader(&received)?, format);
        r.limits(limits());
        let mut decoder = r.into_decoder().map_err(|e| decode_error(kind, e))?;
        let orientation = decoder
            .orientation()
            .unwrap_or(image::metadata::Orientation::NoTransforms);
        let mut img = DynamicImage::from_decoder(decoder).map_err(|e| decode_error(kind, e))?;
        img.apply_orientation(orientation);
        encode(&img, kind, &mut out.writer)?;
        img
    };
    let (width, height) = (first.width(), first.height());
    let (size, sha256) = out.finish()?;
    persist(out.file, &dirs.root.join(key), stored)?;

    let thumb = first.thumbnail(THUMB_SIDE, THUMB_SIDE);
    let alpha = thumb.color().has_alpha();
    let thumb_key = format!("{key}.thumb.{}", if alpha { "png" } else { "jpg" });
    let mut tout = Output::new(dirs)?;
    if alpha {
        thumb
            .write_with_encoder(PngEncoder::new(&mut tout.writer))
            .map_err(encode_error)?;
    } else {
        JpegEncoder::new_with_quality(&mut tout.writer, 80)
            .encode_image(&DynamicImage::ImageRgb8(thumb.to_rgb8()))
            .map_err(encode_error)?;
    }
    tout.finish()?;
    persist(tout.file, &dirs.root.join(&thumb_key), stored)?;

    Ok(Processed {
        content_type: kind.content_type(),
        size,
        sha256,
        width: Some(width),
        height: Some(height),
        storage_key: key.to_owned(),
        thumbnail_key: Some(thumb_key),
        stored: Stored::default(),
    })
}

/// A JPEG must end with its end-of-image marker: a cut-off file is refused, not padded
/// with grey as lenient decoders do. (Trailing zero bytes some cameras add are allowed.)
fn check_jpeg_end(received: &Received) -> Result<(), MediaError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = received.file.reopen()?;
    let len = f.seek(SeekFrom::End(0))?;
    let tail_len = len.min(4096);
    f.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    f.take(tail_len).read_to_end(&mut tail)?;
    let end = tail.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    if end >= 2 && tail[end - 2..end] == [0xFF, 0xD9] {
        Ok(())
    } else {
        Err(MediaError::Broken(
            "the JPEG file is incomplete (no end-of-image marker)".into(),
        ))
    }
}

fn encode(img: &DynamicImage, kind: Sniffed, w: &mut impl Write) -> Result<(), MediaError> {
    match kind {
        Sniffed::Png => img.write_with_encoder(PngEncoder::new(w)),
        Sniffed::Jpeg => JpegEncoder::new_with_quality(w, 88)
            .encode_image(&DynamicImage::ImageRgb8(img.to_rgb8())),
        _ => {
            let img = if img.color().has_alpha() {
                DynamicImage::ImageRgba8(img.to_rgba8())
            } else {
                DynamicImage::ImageRgb8(img.to_rgb8())
            };
            img.write_with_encoder(WebPEncoder::new_lossless(w))
        }
    }
    .map_err(encode_error)
}

/// Re-encodes every frame of a GIF; returns the first, for the thumbnail.
fn reencode_gif(received: &Received, out: &mut Output) -> Result<DynamicImage, MediaError> {
    let kind = Sniffed::Gif;
    let mut decoder = GifDecoder::new(reader(received)?).map_err(|e| decode_error(kind, e))?;
    decoder
        .set_limits(limits())
        .map_err(|e| decode_error(kind, e))?;
    let mut frames = Vec::new();
    let mut budget = MAX_ANIMATION_PIXELS;
    for frame in decoder.into_frames() {
        let frame = frame.map_err(|e| decode_error(kind, e))?;
        let (fw, fh) = frame.buffer().dimensions();
        let pixels = u64::from(fw) * u64::from(fh);
        budget = budget.checked_sub(pixels).ok_or_else(|| {
            MediaError::TooLarge(format!(
                "the animation has more than {} megapixels in all its frames",
                MAX_ANIMATION_PIXELS / 1_000_000
            ))
        })?;
        frames.push(frame);
    }
    let first = frames
        .first()
        .map(|f| DynamicImage::ImageRgba8(f.buffer().clone()))
        .ok_or_else(|| MediaError::Broken("the GIF has no frames".into()))?;
    let mut encoder = GifEncoder::new_with_speed(&mut out.writer, 10);
    encoder.set_repeat(Repeat::Infinite).map_err(encode_error)?;
    encoder.encode_frames(frames).map_err(encode_error)?;
    drop(encoder);
    Ok(first)
}

/// A file being written under `tmp/`, hashed and counted on the way.
struct Output {
    file: NamedTempFile,
    writer: Hashing<BufWriter<File>>,
}

impl Output {
    fn new(dirs: &MediaDirs) -> Result<Output, MediaError> {
        let file = tempfile::Builder::new()
            .prefix("out-")
            .tempfile_in(&dirs.tmp)?;
        let writer = Hashing::new(BufWriter::new(file.reopen()?));
        Ok(Output { file, writer })
    }

    /// Flushes to disk; returns the size and the hex SHA-256.
    fn finish(&mut self) -> Result<(u64, String), MediaError> {
        self.writer.inner.flush()?;
        self.writer.inner.get_ref().sync_all()?;
        let hash = std::mem::take(&mut self.writer.hash).finalize();
        Ok((self.writer.count, hex(&hash)))
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A writer that hashes and counts what passes through.
pub struct Hashing<W> {
    inner: W,
    hash: Sha256,
    count: u64,
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hash: Sha256::new(),
            count: 0,
        }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Renames a finished temporary file into place (same file system: atomic), readable
/// by the group so nginx (in the service's group) can send it.
fn persist(
    file: NamedTempFile,
    target: &std::path::Path,
    stored: &mut Stored,
) -> Result<(), MediaError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o640))?;
    }
    file.persist_noclobber(target).map_err(|e| e.error)?;
    stored.files.push(target.to_owned());
    Ok(())
}
