//! Uploaded media on disk: where files live, and turning an upload into what is stored.
//!
//! Layout under `data_dir/media/`: `<storage_key>` (the file as served),
//! `<storage_key>.thumb.jpg|png` (a picture's thumbnail), and `tmp/` for uploads in
//! progress. Keys are 128 random bits in hex, so they can neither be guessed nor
//! collide with `tmp`. nginx serves the same folder at its internal `/_protected/`
//! location when `media_x_accel` is on.
//!
//! Guarantee: a refused or failed upload leaves nothing behind. Every file is written as
//! a [`tempfile::NamedTempFile`] under `tmp/` (removed when dropped) and only renamed
//! into place once complete; if the database then refuses the row, the caller removes
//! the renamed files ([`Stored::remove`]).

pub mod process;
pub mod sniff;

use std::path::{Path, PathBuf};

/// The media folders of one data directory.
#[derive(Debug, Clone)]
pub struct MediaDirs {
    pub root: PathBuf,
    pub tmp: PathBuf,
}

impl MediaDirs {
    pub fn new(data_dir: &Path) -> MediaDirs {
        let root = data_dir.join("media");
        let tmp = root.join("tmp");
        MediaDirs { root, tmp }
    }

    /// Creates the folders if missing.
    pub async fn ensure(&self) -> std::io::Result<()> {
        tokio::fs::create_dir_all(&self.tmp).await
    }

    /// The path of a stored file, or `None` for a key that is not one of ours (defence
    /// in depth: keys come from the database, never from a request).
    pub fn path_of(&self, key: &str) -> Option<PathBuf> {
        let ok = !key.is_empty()
            && key.len() <= 64
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
            && !key.starts_with('.');
        ok.then(|| self.root.join(key))
    }
}

/// Removes the stored files of one attachment (the file and its thumbnail, if any),
/// once its row is gone. A file already missing is not an error; any other failure is
/// logged and the rest still removed, since the row is gone either way and a leftover
/// file is only wasted space (keys are unguessable, and nothing links to it any more).
pub async fn remove_files(dirs: &MediaDirs, storage_key: &str, thumbnail_key: Option<&str>) {
    for key in std::iter::once(storage_key).chain(thumbnail_key) {
        let Some(path) = dirs.path_of(key) else {
            tracing::warn!(key, "not removing a file with an unexpected storage key");
            continue;
        };
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "could not remove a media file");
            }
        }
    }
}

/// A new random storage key.
pub fn new_key() -> std::io::Result<String> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// 413
    #[error("{0}")]
    TooLarge(String),
    /// 415
    #[error("{0}")]
    Unsupported(String),
    /// 400
    #[error("{0}")]
    Broken(String),
    /// 500
    #[error("storage failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Files renamed into place for one upload, removed again if the upload fails later.
#[derive(Debug, Default)]
pub struct Stored {
    pub files: Vec<PathBuf>,
}

impl Stored {
    pub async fn remove(&self) {
        for f in &self.files {
            if let Err(e) = tokio::fs::remove_file(f).await {
                tracing::warn!(error = %e, path = %f.display(), "could not remove a media file");
            }
        }
    }
}
