//! Pure parsers for the cgroup and proc files the collectors read: text in, typed values out.

/// Why a file's contents could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("key {0:?} is missing")]
    MissingKey(&'static str),
    #[error("{0:?} is not a number")]
    NotANumber(String),
    #[error("unexpected format: {0}")]
    Format(&'static str),
}

/// The value of `key` in a flat keyed file (`key value` per line: `cpu.stat`, `memory.events`,
/// `memory.oom_control`).
pub fn keyed_u64(contents: &str, key: &'static str) -> Result<u64, ParseError> {
    keyed_u64_opt(contents, key)?.ok_or(ParseError::MissingKey(key))
}

/// Like [`keyed_u64`], but a missing key is `None`: older kernels lack some keys.
pub fn keyed_u64_opt(contents: &str, key: &'static str) -> Result<Option<u64>, ParseError> {
    for line in contents.lines() {
        let mut fields = line.split_ascii_whitespace();
        if fields.next() == Some(key) {
            let value = fields.next().ok_or(ParseError::Format("a key without a value"))?;
            return number(value).map(Some);
        }
    }
    Ok(None)
}

fn number(text: &str) -> Result<u64, ParseError> {
    text.trim().parse().map_err(|_| ParseError::NotANumber(text.trim().to_owned()))
}

/// A single-number file (`memory.current`, `cpuacct.usage`, `memory.usage_in_bytes`).
pub fn single_u64(contents: &str) -> Result<u64, ParseError> {
    number(contents)
}

/// CPU accounting of one cgroup, normalised to microseconds whatever the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuStat {
    pub usage_usec: u64,
    pub nr_periods: u64,
    pub nr_throttled: u64,
    pub throttled_usec: u64,
}

/// Throttling counters from a cgroup's `cpu.stat`; v2 names its time `throttled_usec`, v1
/// `throttled_time` in nanoseconds. Usage is not in v1's `cpu.stat` and is filled in separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Throttling {
    pub nr_periods: u64,
    pub nr_throttled: u64,
    pub throttled_usec: u64,
}

/// Parses v2 `cpu.stat`: usage and throttling together. A cgroup without the cpu controller
/// enabled has only the usage keys; its throttling is then all zero, as the kernel would report.
pub fn cpu_stat_v2(contents: &str) -> Result<CpuStat, ParseError> {
    Ok(CpuStat {
        usage_usec: keyed_u64(contents, "usage_usec")?,
        nr_periods: keyed_u64_opt(contents, "nr_periods")?.unwrap_or(0),
        nr_throttled: keyed_u64_opt(contents, "nr_throttled")?.unwrap_or(0),
        throttled_usec: keyed_u64_opt(contents, "throttled_usec")?.unwrap_or(0),
    })
}

/// Parses v1 `cpu.stat` (throttling only).
pub fn cpu_stat_v1(contents: &str) -> Result<Throttling, ParseError> {
    Ok(Throttling {
        nr_periods: keyed_u64(contents, "nr_periods")?,
        nr_throttled: keyed_u64(contents, "nr_throttled")?,
        throttled_usec: keyed_u64(contents, "throttled_time")? / 1_000,
    })
}

/// A CFS bandwidth limit: `quota_us` of CPU time per `period_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuLimit {
    pub quota_us: u64,
    pub period_us: u64,
}

impl CpuLimit {
    /// The limit in cores (quota 50000 per period 100000 is half a core).
    pub fn cores(self) -> f64 {
        self.quota_us as f64 / self.period_us as f64
    }
}

/// Parses v2 `cpu.max` (`<quota|max> <period>`); `None` when unlimited.
pub fn cpu_max(contents: &str) -> Result<Option<CpuLimit>, ParseError> {
    let mut fields = contents.split_ascii_whitespace();
    let quota = fields.next().ok_or(ParseError::Format("cpu.max is empty"))?;
    let period = number(fields.next().ok_or(ParseError::Format("cpu.max has no period"))?)?;
    if quota == "max" {
        return Ok(None);
    }
    limit(number(quota)?, period)
}

/// Parses v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us`; a quota of -1 means unlimited.
pub fn cfs_quota(quota: &str, period: &str) -> Result<Option<CpuLimit>, ParseError> {
    let quota: i64 = quota.trim().parse().map_err(|_| ParseError::NotANumber(quota.trim().to_owned()))?;
    let period = number(period)?;
    match u64::try_from(quota) {
        Ok(quota) => limit(quota, period),
        Err(_) => Ok(None),
    }
}

fn limit(quota_us: u64, period_us: u64) -> Result<Option<CpuLimit>, ParseError> {
    if period_us == 0 {
        return Err(ParseError::Format("a CFS period of zero"));
    }
    Ok(Some(CpuLimit { quota_us, period_us }))
}

/// Parses v2 `memory.max`; `None` when `max`.
pub fn memory_max(contents: &str) -> Result<Option<u64>, ParseError> {
    if contents.trim() == "max" { Ok(None) } else { number(contents).map(Some) }
}

/// v1 has no "unlimited" keyword: an unlimited cgroup reports `PAGE_COUNTER_MAX` pages in bytes,
/// just under `i64::MAX` and rounded to the page size. Anything at or above 2^62 bytes (4 EiB) is
/// treated as that sentinel, since no machine has that much memory.
const V1_UNLIMITED_FROM: u64 = 1 << 62;

/// Parses v1 `memory.limit_in_bytes`; `None` when unlimited.
pub fn memory_limit_v1(contents: &str) -> Result<Option<u64>, ParseError> {
    let value = number(contents)?;
    Ok((value < V1_UNLIMITED_FROM).then_some(value))
}

/// The `oom_kill` counter of v2 `memory.events` or v1 `memory.oom_control`. Kernels before 4.13
/// lack the key in v1; that is reported as missing, not as zero, so it is never mistaken for
/// "no OOM kills".
pub fn oom_kills(contents: &str) -> Result<u64, ParseError> {
    keyed_u64(contents, "oom_kill")
}

/// The aggregate `cpu` line of `/proc/stat`, in USER_HZ ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuTimes {
    /// Guest time is already counted in user and nice, so it is left out of the total.
    pub fn total(&self) -> u64 {
        self.busy() + self.idle + self.iowait
    }

    pub fn busy(&self) -> u64 {
        self.user + self.nice + self.system + self.irq + self.softirq + self.steal
    }

    /// `(mode, ticks)` pairs as `node_cpu_seconds_total` labels them.
    pub fn modes(&self) -> [(&'static str, u64); 8] {
        [
            ("user", self.user),
            ("nice", self.nice),
            ("system", self.system),
            ("idle", self.idle),
            ("iowait", self.iowait),
            ("irq", self.irq),
            ("softirq", self.softirq),
            ("steal", self.steal),
        ]
    }
}

/// Parses the `cpu ` line of `/proc/stat`. Old kernels have fewer columns; absent ones are zero.
pub fn proc_stat(contents: &str) -> Result<CpuTimes, ParseError> {
    let line = contents
        .lines()
        .find(|l| l.split_ascii_whitespace().next() == Some("cpu"))
        .ok_or(ParseError::MissingKey("cpu"))?;
    let values: Vec<u64> = line.split_ascii_whitespace().skip(1).map(number).collect::<Result<_, _>>()?;
    if values.len() < 4 {
        return Err(ParseError::Format("the cpu line has fewer than four columns"));
    }
    let at = |i: usize| values.get(i).copied().unwrap_or(0);
    Ok(CpuTimes {
        user: at(0),
        nice: at(1),
        system: at(2),
        idle: at(3),
        iowait: at(4),
        irq: at(5),
        softirq: at(6),
        steal: at(7),
    })
}

/// The parts of `/proc/meminfo` the node rules need, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    pub total_bytes: u64,
    pub available_bytes: u64,
}

/// Parses `/proc/meminfo` (`MemTotal:  16384 kB`).
pub fn meminfo(contents: &str) -> Result<MemInfo, ParseError> {
    let kib = |key: &'static str| -> Result<u64, ParseError> {
        let line = contents.lines().find(|l| l.split(':').next() == Some(key)).ok_or(ParseError::MissingKey(key))?;
        let value = line.split(':').nth(1).and_then(|v| v.split_ascii_whitespace().next());
        number(value.ok_or(ParseError::Format("a meminfo key without a value"))?).map(|v| v * 1024)
    };
    Ok(MemInfo { total_bytes: kib("MemTotal")?, available_bytes: kib("MemAvailable")? })
}

/// One line of a PSI file: the share of time (percent) some or all tasks stalled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PsiLine {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    pub total_usec: u64,
}

/// A PSI file; `full` is absent for CPU on kernels before 5.13.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Psi {
    pub some: PsiLine,
    pub full: Option<PsiLine>,
}

/// Parses `/proc/pressure/{cpu,memory,io}`.
pub fn psi(contents: &str) -> Result<Psi, ParseError> {
    let mut some = None;
    let mut full = None;
    for line in contents.lines() {
        let mut fields = line.split_ascii_whitespace();
        let slot = match fields.next() {
            Some("some") => &mut some,
            Some("full") => &mut full,
            _ => continue,
        };
        let mut parsed = PsiLine { avg10: f64::NAN, avg60: f64::NAN, avg300: f64::NAN, total_usec: 0 };
        let mut seen = 0;
        for field in fields {
            let (key, value) = field.split_once('=').ok_or(ParseError::Format("a PSI field without '='"))?;
            let ratio = || value.parse::<f64>().map_err(|_| ParseError::NotANumber(value.to_owned()));
            match key {
                "avg10" => parsed.avg10 = ratio()?,
                "avg60" => parsed.avg60 = ratio()?,
                "avg300" => parsed.avg300 = ratio()?,
                "total" => parsed.total_usec = number(value)?,
                _ => continue,
            }
            seen += 1;
        }
        if seen != 4 {
            return Err(ParseError::Format("a PSI line without avg10, avg60, avg300 and total"));
        }
        *slot = Some(parsed);
    }
    Ok(Psi { some: some.ok_or(ParseError::MissingKey("some"))?, full })
}
