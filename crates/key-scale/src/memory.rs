//! A process's memory, as the kernel reports it in `/proc/<pid>/status`.

use anyhow::Context;

/// Resident memory now (VmRSS) and at its peak (VmHWM), in KiB.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Memory {
    pub(crate) rss_kib: u64,
    pub(crate) peak_kib: u64,
}

impl Memory {
    /// This process's memory.
    pub(crate) fn own() -> anyhow::Result<Memory> {
        Memory::read("/proc/self/status")
    }

    /// Process `pid`'s memory.
    pub(crate) fn of(pid: u32) -> anyhow::Result<Memory> {
        Memory::read(&format!("/proc/{pid}/status"))
    }

    fn read(path: &str) -> anyhow::Result<Memory> {
        let status =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let line = status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .with_context(|| format!("{path} has no {name}"))?;
            line.trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .with_context(|| format!("{path}: unreadable {name} {line:?}"))
        };
        Ok(Memory {
            rss_kib: field("VmRSS:")?,
            peak_kib: field("VmHWM:")?,
        })
    }

    pub(crate) fn rss_mib(self) -> f64 {
        kib_to_mib(self.rss_kib)
    }

    pub(crate) fn peak_mib(self) -> f64 {
        kib_to_mib(self.peak_kib)
    }
}

fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
