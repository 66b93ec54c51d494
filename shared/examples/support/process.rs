//! What a benchmark example reads about its own process (Linux /proc), shared by the examples
//! that measure a cold start.

/// Milliseconds since this process was exec'd: /proc/self/stat's start time against
/// /proc/uptime, both since boot (10 ms resolution).
pub fn since_exec_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let start_ticks: f64 = after_name.split(' ').nth(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    Some((uptime - start_ticks / CLOCK_TICKS_PER_SECOND) * 1000.0)
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux the functions run on (reading it would need libc,
/// which this crate does not depend on).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// This process's peak resident set (VmHWM in /proc/self/status), in MiB.
#[allow(dead_code)] // not every example reports it
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
