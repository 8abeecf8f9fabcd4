//! Server and loadgen resource use, read from `/proc` (Linux only; elsewhere the figures
//! are simply absent).

use std::time::Instant;

/// Clock ticks per second of `/proc/<pid>/stat`. `sysconf(_SC_CLK_TCK)` would need
/// `unsafe`; Linux has reported 100 to user space on every architecture for decades.
const CLK_TCK: f64 = 100.0;

/// CPU seconds (user + system) used so far by a process.
pub fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / CLK_TCK)
}

/// Resident memory of a process, in bytes.
pub fn rss_bytes(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A set of processes (the servers under test) sampled together.
#[derive(Debug, Clone, Default)]
pub struct Procs {
    pub pids: Vec<String>,
}

impl Procs {
    pub fn new(pids: &[u32]) -> Procs {
        Procs {
            pids: pids.iter().map(u32::to_string).collect(),
        }
    }

    pub fn me() -> Procs {
        Procs {
            pids: vec!["self".into()],
        }
    }

    pub fn cpu_secs(&self) -> Option<f64> {
        if self.pids.is_empty() {
            return None;
        }
        self.pids.iter().map(|p| cpu_secs(p)).sum()
    }

    pub fn rss_bytes(&self) -> Option<u64> {
        if self.pids.is_empty() {
            return None;
        }
        self.pids.iter().map(|p| rss_bytes(p)).sum()
    }

    /// Starts measuring CPU use over a window.
    pub fn cpu_window(&self) -> CpuWindow {
        CpuWindow {
            procs: self.clone(),
            start: Instant::now(),
            cpu: self.cpu_secs(),
        }
    }
}

pub struct CpuWindow {
    procs: Procs,
    start: Instant,
    cpu: Option<f64>,
}

impl CpuWindow {
    /// Cores used on average since the window started (1.0 = one core fully busy).
    pub fn cores(&self) -> Option<f64> {
        let wall = self.start.elapsed().as_secs_f64();
        let used = self.procs.cpu_secs()? - self.cpu?;
        (wall > 0.0).then(|| used / wall)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_process() {
        let me = Procs::me();
        assert!(me.rss_bytes().is_some_and(|b| b > 0));
        assert!(me.cpu_secs().is_some());
        assert!(Procs::default().rss_bytes().is_none());
    }
}
