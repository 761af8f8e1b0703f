//! [`FileStore`]: the [`Store`] of hosts with a file system, one directory per logger.
//!
//! # What it owns
//!
//! The store owns the files it names inside its directory, and nothing else:
//!
//! - one file per key, `<encoded key>.rec`, holding exactly the value bytes. Keys are
//!   mapped to flat file names reversibly: bytes in `[a-z0-9._-]` are kept, every other
//!   byte (including `/`, `%` and upper-case letters, so names never collide on
//!   case-insensitive file systems) becomes `%XX` with upper-case hex;
//! - `<encoded key>.rec.tmp`, the temporary file of a `put` in flight; leftovers from an
//!   interrupted put are deleted by [`FileStore::open`];
//! - `journal.log`, the append-only journal.
//!
//! Any other file in the directory (including names that are not the canonical encoding
//! of a key) is foreign: it is never listed, counted towards the quota, or deleted.
//! Exactly one `FileStore` may use a directory at a time; two instances would keep
//! diverging views of the usage and the key set.
//!
//! # Durability
//!
//! - `put` is atomic against both a killed process (kill -9) and power loss: the value is
//!   written to a temporary file, the file is fsynced, renamed over the target and the
//!   directory is fsynced. After any crash the key holds the old or the new value, never
//!   a mix. When `put` returns `Ok`, the new value survives power loss; when it returns an
//!   error after the rename (directory fsync failed), the new value is visible but may
//!   still be lost on power loss.
//! - `remove` fsyncs the directory after unlinking, so a removal that returned `Ok`
//!   survives power loss.
//! - `journal_append` does not fsync: each append is one `write_all` into the page cache.
//!   An append that returned `Ok` survives kill -9 (the kernel holds the bytes), but power
//!   loss may lose any suffix of the journal written since the last
//!   [`sync`](FileStore::sync) or [`journal_clear`](Store::journal_clear), or leave a torn
//!   tail. The core frames and checksums every record, so it detects and drops a torn
//!   tail; this store adds no integrity checks of its own.
//! - `journal_clear` truncates and fsyncs, so a clear that returned `Ok` survives power
//!   loss. [`FileStore::sync`] fsyncs the journal (and the directory) for a graceful
//!   shutdown.
//!
//! All of this holds only where the OS and the device honour fsync. On Apple platforms
//! `File::sync_all` issues `F_FULLFSYNC`, which also flushes the drive cache. A file
//! system that rejects fsync on a directory (`EINVAL`, unsupported) is tolerated, as
//! SQLite does: the directory sync is then skipped and renames rely on the file system's
//! own metadata ordering. On non-Unix platforms directories are not fsynced (they cannot
//! be opened as files there); NTFS journals its metadata.
//!
//! # Quota
//!
//! Usage is the total size of all values plus the journal; it is computed once by
//! [`FileStore::open`] and then tracked in memory, with no directory scan per call.
//! `put` and `journal_append` return [`StoreError::QuotaExceeded`] when the usage after
//! the write would exceed the quota and the write would grow it; a replacing `put` counts
//! only the size difference, so rewriting a value with one of equal or smaller size is
//! always accepted (even when a reopen with a smaller quota left the store over quota).
//! Rejected writes leave the old data untouched.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::store::{Store, StoreError};

/// Extension of value files; it is how the store tells its records from temp and foreign files.
const RECORD_EXT: &str = ".rec";

/// Suffix of a value file while its `put` is in flight; such files are garbage after a crash.
const TEMP_SUFFIX: &str = ".tmp";

/// Name of the append-only journal; without the record extension, so it is never a key.
const JOURNAL_FILE: &str = "journal.log";

/// Longest file name (in bytes) we create: the per-component limit of ext4, APFS and NTFS.
const MAX_FILE_NAME_LEN: usize = 255;

/// A [`Store`] over a directory: one file per key plus an append-only journal file.
///
/// See the [module documentation](self) for the on-disk layout and durability guarantees.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    quota_bytes: u64,
    /// Size of every stored value, by key; the source of `keys` and of the value usage.
    sizes: BTreeMap<String, u64>,
    /// Sum of `sizes`.
    values_bytes: u64,
    /// Current length of the journal file.
    journal_bytes: u64,
    /// Append handle on the journal, opened on first use and kept open across calls.
    journal: Option<File>,
}

impl FileStore {
    /// Opens the store in `dir`, creating the directory if needed, deleting temp files
    /// left by interrupted puts and computing the current usage.
    ///
    /// `quota_bytes` bounds the total size of all values plus the journal.
    pub fn open(dir: impl AsRef<Path>, quota_bytes: u64) -> Result<FileStore, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        let existed = dir.is_dir();
        fs::create_dir_all(&dir).map_err(|e| io_error("create directory", &dir, &e))?;
        if !existed {
            // Make the new directory's own entry durable, so the first put cannot vanish
            // with its directory on power loss.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }

        let mut sizes = BTreeMap::new();
        let entries = fs::read_dir(&dir).map_err(|e| io_error("list", &dir, &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error("list", &dir, &e))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                continue; // Not UTF-8: not a name this store creates.
            };
            let path = entry.path();
            let is_file = entry
                .file_type()
                .map_err(|e| io_error("inspect", &path, &e))?
                .is_file();
            if !is_file {
                continue;
            }
            if let Some(record) = name.strip_suffix(TEMP_SUFFIX) {
                if decode_record_name(record).is_some() {
                    fs::remove_file(&path).map_err(|e| io_error("remove temp file", &path, &e))?;
                }
            } else if let Some(key) = decode_record_name(name) {
                let len = entry
                    .metadata()
                    .map_err(|e| io_error("inspect", &path, &e))?
                    .len();
                sizes.insert(key, len);
            }
        }

        let journal_path = dir.join(JOURNAL_FILE);
        let journal_bytes = match fs::metadata(&journal_path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_error("inspect", &journal_path, &e)),
        };

        let values_bytes = sizes
            .values()
            .fold(0u64, |sum, len| sum.saturating_add(*len));
        Ok(FileStore {
            dir,
            quota_bytes,
            sizes,
            values_bytes,
            journal_bytes,
            journal: None,
        })
    }

    /// The directory this store owns files in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The byte quota for values plus journal.
    pub fn quota_bytes(&self) -> u64 {
        self.quota_bytes
    }

    /// Bytes currently used by all values plus the journal.
    pub fn usage_bytes(&self) -> u64 {
        self.values_bytes.saturating_add(self.journal_bytes)
    }

    /// Fsyncs the journal and the directory, so every append so far survives power loss.
    /// For a graceful shutdown; a no-op on the journal if it was never opened.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        if let Some(journal) = &self.journal {
            let path = self.dir.join(JOURNAL_FILE);
            journal
                .sync_all()
                .map_err(|e| io_error("sync", &path, &e))?;
            // The journal may have been created by this process: make its entry durable.
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Whether a write that changes usage from `usage_bytes()` to `after` must be refused.
    fn over_quota(&self, after: u64) -> bool {
        after > self.quota_bytes && after > self.usage_bytes()
    }

    fn journal_handle(&mut self) -> Result<&mut File, StoreError> {
        if self.journal.is_none() {
            let path = self.dir.join(JOURNAL_FILE);
            let file = OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
                .map_err(|e| io_error("open", &path, &e))?;
            self.journal = Some(file);
        }
        match self.journal.as_mut() {
            Some(file) => Ok(file),
            None => Err(StoreError::Io("journal handle unavailable".to_string())),
        }
    }
}

impl Store for FileStore {
    fn put(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let Some(name) = record_name(key) else {
            return Err(StoreError::Io(format!(
                "key too long for a file name: {key:?}"
            )));
        };
        let temp_name = format!("{name}{TEMP_SUFFIX}");
        let old_len = self.sizes.get(key).copied().unwrap_or(0);
        let new_len = value.len() as u64;
        let after = self
            .usage_bytes()
            .saturating_sub(old_len)
            .saturating_add(new_len);
        if self.over_quota(after) {
            return Err(StoreError::QuotaExceeded);
        }

        let target = self.dir.join(&name);
        let temp = self.dir.join(&temp_name);
        if let Err(e) = write_synced(&temp, value) {
            // Best effort: a leftover temp file is also removed by the next open.
            let _ = fs::remove_file(&temp);
            return Err(io_error("write", &temp, &e));
        }
        if let Err(e) = fs::rename(&temp, &target) {
            let _ = fs::remove_file(&temp);
            return Err(io_error("rename into", &target, &e));
        }
        // The new value is in place: account for it before the directory sync can fail.
        self.sizes.insert(key.to_string(), new_len);
        self.values_bytes = self
            .values_bytes
            .saturating_sub(old_len)
            .saturating_add(new_len);
        sync_dir(&self.dir)
    }

    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(name) = record_name(key) else {
            return Ok(None); // `put` refuses such keys, so none is stored.
        };
        let path = self.dir.join(name);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("read", &path, &e)),
        }
    }

    fn remove(&mut self, key: &str) -> Result<(), StoreError> {
        let Some(name) = record_name(key) else {
            return Ok(()); // `put` refuses such keys, so none is stored.
        };
        let path = self.dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Nothing was unlinked, so there is nothing to make durable.
                if let Some(len) = self.sizes.remove(key) {
                    self.values_bytes = self.values_bytes.saturating_sub(len);
                }
                return Ok(());
            }
            Err(e) => return Err(io_error("remove", &path, &e)),
        }
        if let Some(len) = self.sizes.remove(key) {
            self.values_bytes = self.values_bytes.saturating_sub(len);
        }
        sync_dir(&self.dir)
    }

    fn keys(&mut self, prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .sizes
            .range(prefix.to_string()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, _)| key.clone())
            .collect())
    }

    fn journal_append(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let after = self.usage_bytes().saturating_add(bytes.len() as u64);
        if self.over_quota(after) {
            return Err(StoreError::QuotaExceeded);
        }
        let before = self.journal_bytes;
        let file = self.journal_handle()?;
        match file.write_all(bytes) {
            Ok(()) => {
                self.journal_bytes = before.saturating_add(bytes.len() as u64);
                Ok(())
            }
            Err(e) => {
                // Part of the bytes may have landed: re-read the length, assuming the worst
                // if even that fails, and reopen the handle on the next append.
                self.journal_bytes = file
                    .metadata()
                    .map(|meta| meta.len())
                    .unwrap_or_else(|_| before.saturating_add(bytes.len() as u64));
                self.journal = None;
                Err(io_error("append to", &self.dir.join(JOURNAL_FILE), &e))
            }
        }
    }

    fn journal_read(&mut self) -> Result<Vec<u8>, StoreError> {
        let path = self.dir.join(JOURNAL_FILE);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("open", &path, &e)),
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| io_error("read", &path, &e))?;
        Ok(bytes)
    }

    fn journal_clear(&mut self) -> Result<(), StoreError> {
        let path = self.dir.join(JOURNAL_FILE);
        let file = self.journal_handle()?;
        file.set_len(0)
            .map_err(|e| io_error("truncate", &path, &e))?;
        let synced = file.sync_all();
        self.journal_bytes = 0;
        synced.map_err(|e| io_error("sync", &path, &e))?;
        // The handle may have just created the file: make its entry durable too.
        sync_dir(&self.dir)
    }
}

/// The record file name of `key`, or `None` when it (with the temp suffix of a put in
/// flight) would not fit in a file name.
fn record_name(key: &str) -> Option<String> {
    let name = encode_record_name(key);
    (name.len() + TEMP_SUFFIX.len() <= MAX_FILE_NAME_LEN).then_some(name)
}

/// Maps a key to its record file name: `[a-z0-9._-]` kept, every other byte as `%XX`.
fn encode_record_name(key: &str) -> String {
    let mut name = String::with_capacity(key.len() + RECORD_EXT.len());
    for &byte in key.as_bytes() {
        if is_kept_byte(byte) {
            name.push(char::from(byte));
        } else {
            name.push('%');
            name.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
            name.push(char::from(HEX_DIGITS[usize::from(byte & 0x0F)]));
        }
    }
    name.push_str(RECORD_EXT);
    name
}

/// The key a record file name stands for, or `None` for any name `encode_record_name`
/// would not produce (foreign files, non-canonical escapes).
fn decode_record_name(name: &str) -> Option<String> {
    let stem = name.strip_suffix(RECORD_EXT)?;
    let mut bytes = Vec::with_capacity(stem.len());
    let mut rest = stem.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let (&[high, low], tail) = tail.split_first_chunk::<2>()?;
            let decoded = (hex_value(high)? << 4) | hex_value(low)?;
            if is_kept_byte(decoded) {
                return None; // Kept bytes are never escaped.
            }
            bytes.push(decoded);
            rest = tail;
        } else if is_kept_byte(byte) {
            bytes.push(byte);
            rest = tail;
        } else {
            return None;
        }
    }
    String::from_utf8(bytes).ok()
}

/// Upper-case hex digits used in escapes; lower-case ones are not canonical.
const HEX_DIGITS: &[u8; 16] = b"0123456789ABCDEF";

/// Bytes stored as themselves: safe in file names everywhere and case-insensitive-proof.
fn is_kept_byte(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit() || matches!(byte, b'.' | b'_' | b'-')
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Creates or truncates `path`, writes `bytes` and fsyncs the file.
fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Fsyncs a directory so renames, creations and unlinks in it survive power loss.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    let result = File::open(dir).and_then(|d| d.sync_all());
    match result {
        Ok(()) => Ok(()),
        // Some file systems cannot fsync a directory; there is nothing more to do.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(io_error("sync directory", dir, &e)),
    }
}

/// Directories cannot be opened as files here; the file system orders its own metadata.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), StoreError> {
    Ok(())
}

fn io_error(op: &str, path: &Path, err: &io::Error) -> StoreError {
    StoreError::Io(format!("{op} {}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A unique directory under the system temp dir, removed when dropped.
    struct TestDir(PathBuf);

    impl TestDir {
        fn new() -> Self {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir()
                .join(format!("sightline-file-store-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            TestDir(path)
        }

        fn path(&self) -> &Path {
            &self.0
        }

        fn open(&self, quota: u64) -> FileStore {
            FileStore::open(&self.0, quota).expect("open store")
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const BIG: u64 = 1 << 30;

    #[test]
    fn put_get_replace_remove_round_trip_including_keys_with_slashes() {
        let dir = TestDir::new();
        let mut store = dir.open(BIG);
        store.put("state", b"s1").unwrap();
        store
            .put("batch/00000000000000000042", b"forty-two")
            .unwrap();
        assert_eq!(store.get("state").unwrap().as_deref(), Some(&b"s1"[..]));
        assert_eq!(
            store.get("batch/00000000000000000042").unwrap().as_deref(),
            Some(&b"forty-two"[..])
        );

        store.put("state", b"second value").unwrap();
        assert_eq!(
            store.get("state").unwrap().as_deref(),
            Some(&b"second value"[..])
        );

        store.remove("batch/00000000000000000042").unwrap();
        assert_eq!(store.get("batch/00000000000000000042").unwrap(), None);
        assert_eq!(store.keys("").unwrap(), ["state"]);
        assert_eq!(store.usage_bytes(), b"second value".len() as u64);
    }

    #[test]
    fn keys_are_listed_by_prefix_in_ascending_order_and_decoded() {
        let dir = TestDir::new();
        let mut store = dir.open(BIG);
        for key in ["batch/3", "batch/1", "state", "batch/2", "batches", "b"] {
            store.put(key, key.as_bytes()).unwrap();
        }
        assert_eq!(
            store.keys("batch/").unwrap(),
            ["batch/1", "batch/2", "batch/3"]
        );
        assert_eq!(
            store.keys("").unwrap(),
            ["b", "batch/1", "batch/2", "batch/3", "batches", "state"]
        );
        assert!(store.keys("nope").unwrap().is_empty());
    }

    #[test]
    fn unusual_keys_round_trip_and_map_to_safe_flat_file_names() {
        let dir = TestDir::new();
        let mut store = dir.open(BIG);
        let keys = [
            "a/b/c",
            "Upper",
            "upper",
            "100%",
            "sp ace",
            "dots..",
            "..",
            "",
            "journal.log",
            "x.rec",
            "y.tmp",
            "ünï",
        ];
        for key in keys {
            store.put(key, key.as_bytes()).unwrap();
        }
        let mut expected: Vec<&str> = keys.to_vec();
        expected.sort_unstable();
        assert_eq!(store.keys("").unwrap(), expected);
        for key in keys {
            assert_eq!(store.get(key).unwrap().as_deref(), Some(key.as_bytes()));
            let name = encode_record_name(key);
            assert!(
                name.bytes()
                    .all(|b| is_kept_byte(b) || b == b'%' || b.is_ascii_uppercase())
            );
            assert_eq!(decode_record_name(&name).as_deref(), Some(key));
        }
        // The journal is not mistaken for the key "journal.log".
        assert!(store.journal_read().unwrap().is_empty());
    }

    #[test]
    fn a_reopened_store_sees_the_same_values_and_keys() {
        let dir = TestDir::new();
        {
            let mut store = dir.open(BIG);
            store.put("state", b"persisted").unwrap();
            store.put("batch/1", b"one").unwrap();
            store.put("batch/2", b"two").unwrap();
            store.remove("batch/1").unwrap();
        }
        let mut store = dir.open(BIG);
        assert_eq!(store.keys("").unwrap(), ["batch/2", "state"]);
        assert_eq!(
            store.get("state").unwrap().as_deref(),
            Some(&b"persisted"[..])
        );
        assert_eq!(store.get("batch/2").unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(store.get("batch/1").unwrap(), None);
    }

    #[test]
    fn leftover_temp_files_from_an_interrupted_put_are_ignored_and_removed_on_open() {
        let dir = TestDir::new();
        {
            let mut store = dir.open(BIG);
            store.put("state", b"old").unwrap();
        }
        // A put of "state" and of a new key killed between write and rename.
        let state_temp = dir.path().join("state.rec.tmp");
        let new_temp = dir.path().join("batch%2F7.rec.tmp");
        fs::write(&state_temp, b"half-written new").unwrap();
        fs::write(&new_temp, b"never renamed").unwrap();

        let mut store = dir.open(BIG);
        assert!(!state_temp.exists());
        assert!(!new_temp.exists());
        assert_eq!(store.keys("").unwrap(), ["state"]);
        assert_eq!(store.get("state").unwrap().as_deref(), Some(&b"old"[..]));
        assert_eq!(store.usage_bytes(), 3);
        // A later put of the same key works normally.
        store.put("state", b"new").unwrap();
        assert_eq!(store.get("state").unwrap().as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn foreign_files_in_the_directory_are_ignored_by_keys_usage_and_cleanup() {
        let dir = TestDir::new();
        fs::create_dir_all(dir.path()).unwrap();
        let foreign = [
            "README",
            "notes.txt",
            "other.tmp",
            "batch%2f1.rec",  // lower-case escape: not canonical
            "Upper.rec",      // upper-case letters are always escaped
            "a%2.rec",        // truncated escape
            "a%61.rec",       // escaped kept byte
            "bad%FF.rec",     // not UTF-8 once decoded
            "bad%2f.rec.tmp", // not one of our temp files
        ];
        for name in foreign {
            fs::write(dir.path().join(name), b"foreign bytes").unwrap();
        }
        fs::create_dir(dir.path().join("subdir.rec")).unwrap();

        let mut store = dir.open(BIG);
        store.put("mine", b"m").unwrap();
        assert_eq!(store.keys("").unwrap(), ["mine"]);
        assert_eq!(store.usage_bytes(), 1);
        drop(store);

        let mut store = dir.open(BIG);
        assert_eq!(store.keys("").unwrap(), ["mine"]);
        assert_eq!(store.usage_bytes(), 1);
        for name in foreign {
            assert!(dir.path().join(name).exists(), "{name} was deleted");
        }
    }

    #[test]
    fn quota_rejects_an_oversized_put_and_leaves_the_old_value_intact() {
        let dir = TestDir::new();
        let mut store = dir.open(10);
        store.put("state", b"12345").unwrap();
        store.journal_append(b"abc").unwrap();
        // 3 journal bytes + 8 new value bytes = 11 > 10.
        assert_eq!(
            store.put("state", b"12345678"),
            Err(StoreError::QuotaExceeded)
        );
        assert_eq!(store.put("other", b"123"), Err(StoreError::QuotaExceeded));
        assert_eq!(store.get("state").unwrap().as_deref(), Some(&b"12345"[..]));
        assert_eq!(store.get("other").unwrap(), None);
        assert_eq!(store.keys("").unwrap(), ["state"]);
        assert_eq!(store.usage_bytes(), 8);
        // Exactly filling the quota is allowed.
        store.put("state", b"1234567").unwrap();
        assert_eq!(store.usage_bytes(), 10);
    }

    #[test]
    fn quota_rejects_a_journal_append_that_would_exceed_it_and_keeps_the_journal_intact() {
        let dir = TestDir::new();
        let mut store = dir.open(10);
        store.put("state", b"1234").unwrap();
        store.journal_append(b"abcd").unwrap();
        assert_eq!(store.journal_append(b"xyz"), Err(StoreError::QuotaExceeded));
        assert_eq!(store.journal_read().unwrap(), b"abcd");
        assert_eq!(store.get("state").unwrap().as_deref(), Some(&b"1234"[..]));
        store.journal_append(b"xy").unwrap();
        assert_eq!(store.journal_read().unwrap(), b"abcdxy");
        assert_eq!(store.usage_bytes(), 10);
    }

    #[test]
    fn a_replacing_put_of_the_same_size_succeeds_at_full_quota() {
        let dir = TestDir::new();
        let mut store = dir.open(8);
        store.put("state", b"aaaa").unwrap();
        store.journal_append(b"jjjj").unwrap();
        assert_eq!(store.usage_bytes(), 8);
        store.put("state", b"bbbb").unwrap();
        assert_eq!(store.get("state").unwrap().as_deref(), Some(&b"bbbb"[..]));
        store.put("state", b"cc").unwrap();
        assert_eq!(store.usage_bytes(), 6);
    }

    #[test]
    fn removing_and_clearing_free_quota_for_new_writes() {
        let dir = TestDir::new();
        let mut store = dir.open(6);
        store.put("a", b"aaa").unwrap();
        store.journal_append(b"jjj").unwrap();
        assert_eq!(store.put("b", b"b"), Err(StoreError::QuotaExceeded));
        store.remove("a").unwrap();
        store.put("b", b"bbb").unwrap();
        assert_eq!(store.journal_append(b"j"), Err(StoreError::QuotaExceeded));
        store.journal_clear().unwrap();
        store.journal_append(b"kkk").unwrap();
        assert_eq!(store.usage_bytes(), 6);
        assert_eq!(store.journal_read().unwrap(), b"kkk");
    }

    #[test]
    fn writes_that_do_not_grow_usage_are_accepted_when_a_smaller_quota_leaves_the_store_over_it() {
        let dir = TestDir::new();
        {
            let mut store = dir.open(BIG);
            store.put("state", b"0123456789").unwrap();
        }
        let mut store = dir.open(4);
        assert_eq!(store.usage_bytes(), 10);
        assert_eq!(
            store.put("state", b"01234567890"),
            Err(StoreError::QuotaExceeded)
        );
        assert_eq!(store.journal_append(b"j"), Err(StoreError::QuotaExceeded));
        store.put("state", b"9876543210").unwrap();
        store.put("state", b"short").unwrap();
        assert_eq!(store.get("state").unwrap().as_deref(), Some(&b"short"[..]));
        assert_eq!(store.usage_bytes(), 5);
    }

    #[test]
    fn usage_survives_reopen() {
        let dir = TestDir::new();
        let usage = {
            let mut store = dir.open(BIG);
            store.put("state", &[7; 100]).unwrap();
            store.put("batch/1", &[1; 40]).unwrap();
            store.put("batch/2", &[2; 60]).unwrap();
            store.put("batch/2", &[2; 30]).unwrap();
            store.remove("batch/1").unwrap();
            store.journal_append(&[9; 25]).unwrap();
            store.usage_bytes()
        };
        assert_eq!(usage, 100 + 30 + 25);
        let store = dir.open(BIG);
        assert_eq!(store.usage_bytes(), usage);
    }

    #[test]
    fn journal_append_read_and_clear_persist_across_reopen() {
        let dir = TestDir::new();
        {
            let mut store = dir.open(BIG);
            assert!(store.journal_read().unwrap().is_empty());
            store.journal_append(b"first ").unwrap();
            store.journal_append(b"").unwrap();
            store.journal_append(b"second").unwrap();
            assert_eq!(store.journal_read().unwrap(), b"first second");
        }
        {
            let mut store = dir.open(BIG);
            assert_eq!(store.journal_read().unwrap(), b"first second");
            store.journal_append(b" third").unwrap();
            assert_eq!(store.journal_read().unwrap(), b"first second third");
            store.journal_clear().unwrap();
            assert!(store.journal_read().unwrap().is_empty());
            store.journal_append(b"after clear").unwrap();
        }
        let mut store = dir.open(BIG);
        assert_eq!(store.journal_read().unwrap(), b"after clear");
        assert_eq!(store.usage_bytes(), 11);
        assert!(store.keys("").unwrap().is_empty());
    }

    #[test]
    fn clearing_a_journal_that_was_never_written_leaves_it_empty() {
        let dir = TestDir::new();
        let mut store = dir.open(BIG);
        store.journal_clear().unwrap();
        assert!(store.journal_read().unwrap().is_empty());
        assert_eq!(store.usage_bytes(), 0);
    }

    #[test]
    fn sync_succeeds_and_the_synced_journal_is_read_back_after_reopen() {
        let dir = TestDir::new();
        {
            let mut store = dir.open(BIG);
            store.sync().unwrap();
            store.journal_append(b"synced").unwrap();
            store.sync().unwrap();
        }
        let mut store = dir.open(BIG);
        assert_eq!(store.journal_read().unwrap(), b"synced");
    }

    #[test]
    fn missing_keys_read_as_none_and_remove_without_error() {
        let dir = TestDir::new();
        let mut store = dir.open(BIG);
        assert_eq!(store.get("absent").unwrap(), None);
        store.remove("absent").unwrap();
        assert!(store.keys("").unwrap().is_empty());
    }

    #[test]
    fn open_creates_missing_nested_directories() {
        let dir = TestDir::new();
        let nested = dir.path().join("a").join("b");
        let mut store = FileStore::open(&nested, BIG).unwrap();
        store.put("state", b"x").unwrap();
        assert!(nested.join("state.rec").is_file());
        assert_eq!(store.dir(), nested.as_path());
        assert_eq!(store.quota_bytes(), BIG);
    }

    #[test]
    fn a_key_too_long_for_a_file_name_is_refused_with_an_io_error() {
        let dir = TestDir::new();
        let mut store = dir.open(BIG);
        let key: String = vec!['/'; 100].into_iter().collect();
        assert!(matches!(store.put(&key, b"v"), Err(StoreError::Io(_))));
        assert!(store.keys("").unwrap().is_empty());
        assert_eq!(store.usage_bytes(), 0);
        assert_eq!(store.get(&key).unwrap(), None);
        store.remove(&key).unwrap();
        // The longest accepted key still works.
        let longest: String = vec!['k'; MAX_FILE_NAME_LEN - ".rec.tmp".len()]
            .into_iter()
            .collect();
        store.put(&longest, b"v").unwrap();
        assert_eq!(store.get(&longest).unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn opening_a_path_that_is_a_file_is_an_io_error_not_a_panic() {
        let dir = TestDir::new();
        fs::create_dir_all(dir.path()).unwrap();
        let file = dir.path().join("plain");
        fs::write(&file, b"x").unwrap();
        assert!(matches!(
            FileStore::open(&file, BIG),
            Err(StoreError::Io(_))
        ));
    }
}
