//! Runs the real `mfa-bulk` binary as a child process, samples its peak resident memory
//! (`VmHWM` in `/proc/<pid>/status`) every ~50 ms until it exits, and keeps its output.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct ChildRun {
    pub args: Vec<String>,
    pub exit_code: Option<i32>,
    pub wall_secs: f64,
    /// Peak resident set size (VmHWM, the kernel's high-water mark), in KiB.
    pub peak_rss_kib: u64,
    /// CPU seconds (user + system) of the child, from its last sample before it exited.
    pub cpu_secs: f64,
    /// CPU seconds this process (the in-process simulator) spent while the child ran.
    pub sim_cpu_secs: f64,
    pub stdout: String,
    pub stderr_tail: String,
}

impl ChildRun {
    pub(crate) fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_kib as f64 / 1024.0
    }
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User + system CPU seconds of a process (`/proc/<pid>/stat`, clock ticks of 1/100 s).
pub(crate) fn cpu_secs(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Runs `bin args` in `dir` with `envs`; stdout goes to a file there (or is discarded).
pub(crate) fn run(
    bin: &Path,
    args: &[String],
    dir: &Path,
    envs: &[(&str, &str)],
    keep_stdout: bool,
) -> anyhow::Result<ChildRun> {
    std::fs::create_dir_all(dir)?;
    let out_path: PathBuf = dir.join("stdout.txt");
    let err_path: PathBuf = dir.join("stderr.txt");
    let stdout = if keep_stdout {
        Stdio::from(std::fs::File::create(&out_path)?)
    } else {
        Stdio::null()
    };
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::from(std::fs::File::create(&err_path)?))
        // No colours, no progress bars in the captured output.
        .env("NO_COLOR", "1");
    // Only what the bench passes decides where the tool goes and who it signs in as.
    for k in [
        "AZURE_AUTHORITY_HOST",
        "AZURE_CLIENT_CERTIFICATE_PASSWORD",
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_TENANT_ID",
        "MFA_BULK_ACCESS_TOKEN",
        "MFA_BULK_CLOUD",
        "MFA_BULK_GRAPH_URL",
        "MFA_BULK_LOGIN_URL",
    ] {
        cmd.env_remove(k);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let mut peak = 0u64;
    let mut cpu = 0.0f64;
    let self_cpu = cpu_secs("self").unwrap_or(0.0);
    let status = loop {
        if let Some(v) = vm_hwm_kib(pid) {
            peak = peak.max(v);
        }
        if let Some(c) = cpu_secs(&pid.to_string()) {
            cpu = cpu.max(c);
        }
        if let Some(st) = child.try_wait()? {
            break st;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let wall_secs = started.elapsed().as_secs_f64();
    let sim_cpu_secs = cpu_secs("self").unwrap_or(0.0) - self_cpu;
    let stdout = if keep_stdout {
        std::fs::read_to_string(&out_path).unwrap_or_default()
    } else {
        String::new()
    };
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let tail_start = stderr
        .char_indices()
        .rev()
        .nth(2000)
        .map(|(i, _)| i)
        .unwrap_or(0);
    Ok(ChildRun {
        args: args.to_vec(),
        exit_code: status.code(),
        wall_secs,
        peak_rss_kib: peak,
        cpu_secs: cpu,
        sim_cpu_secs,
        stdout,
        stderr_tail: stderr[tail_start..].to_string(),
    })
}
