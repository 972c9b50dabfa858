//! The server's own CPU time, read from Linux's per-thread scheduler statistics: the figure
//! that does not depend on how much of the machine the load generator takes (issue 18). Each
//! `/proc/<pid>/task/<tid>/schedstat` starts with the nanoseconds that thread has run; their
//! sum is the process's CPU time (a thread that exits mid-phase takes its time with it; the
//! server's runtime threads live as long as it does).

use std::{fs, path::PathBuf};

use crate::error::Error;

/// The CPU time, in nanoseconds, that process `pid` has used so far.
pub(crate) fn cpu_nanos(pid: u32) -> Result<u64, Error> {
    let tasks = PathBuf::from(format!("/proc/{pid}/task"));
    let unreadable = |source| Error::ServerCpu {
        path: tasks.clone(),
        source,
    };
    let mut total = 0_u64;
    for entry in fs::read_dir(&tasks).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path().join("schedstat");
        // A thread that exited between the listing and the read ran no more.
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        total += text
            .split_whitespace()
            .next()
            .and_then(|field| field.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_used_some_cpu_and_the_count_only_grows() {
        let pid = std::process::id();
        let before = cpu_nanos(pid).unwrap();
        let mut spin = 0_u64;
        for i in 0..2_000_000_u64 {
            spin = spin.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(spin);
        let after = cpu_nanos(pid).unwrap();
        assert!(before > 0 && after > before, "{before} then {after}");
    }

    #[test]
    fn a_process_that_is_not_there_is_an_error() {
        assert!(cpu_nanos(u32::MAX).is_err());
    }
}
