//! The keys file: the seeded keys' plaintexts, one a line. It holds throwaway benchmark keys
//! and is created readable by its owner only; its lines are never printed.

use std::{
    fs::{File, OpenOptions},
    io::{self, BufRead, BufReader, BufWriter},
    os::unix::fs::OpenOptionsExt,
    path::Path,
};

use anyhow::Context;

/// Creates (or truncates) the keys file at `path`, mode 0600.
pub(crate) fn create(path: &Path) -> anyhow::Result<BufWriter<File>> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create the keys file {}", path.display()))?;
    Ok(BufWriter::with_capacity(1 << 20, file))
}

/// The keys of the file at `path`, read lazily (a million keys held at once would add their
/// own tens of megabytes to the memory being measured); blank lines are no keys.
fn stream(path: &Path) -> anyhow::Result<impl Iterator<Item = io::Result<String>> + use<>> {
    let file = File::open(path)
        .with_context(|| format!("cannot open the keys file {}", path.display()))?;
    Ok(BufReader::with_capacity(1 << 20, file)
        .lines()
        .filter(|line| !matches!(line, Ok(line) if line.trim().is_empty())))
}

/// The keys of the file at `path`, lazily, `size` at a time.
pub(crate) fn chunks(
    path: &Path,
    size: usize,
) -> anyhow::Result<impl Iterator<Item = anyhow::Result<Vec<String>>> + use<>> {
    let mut keys = stream(path)?;
    let display = path.display().to_string();
    Ok(std::iter::from_fn(move || {
        match keys.by_ref().take(size).collect::<io::Result<Vec<_>>>() {
            Ok(chunk) if chunk.is_empty() => None,
            read => Some(read.with_context(|| format!("cannot read the keys file {display}"))),
        }
    }))
}

/// Every key of the file at `path`.
pub(crate) fn read_all(path: &Path) -> anyhow::Result<Vec<String>> {
    let keys = stream(path)?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("cannot read the keys file {}", path.display()))?;
    anyhow::ensure!(
        !keys.is_empty(),
        "the keys file {} is empty",
        path.display()
    );
    Ok(keys)
}
