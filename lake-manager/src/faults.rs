//! Fault points, for tests that crash the process for real: compiled in only with the
//! `fault-injection` feature, which the workspace's test builds turn on (through `api`'s
//! dev-dependency) and a release build does not. `LAKEPLANE_FAULT_KILL_AT=<point>` makes the
//! process SIGKILL itself when it reaches that point: right after a side effect, before the
//! plane has recorded it, which is where a crash hurts most.

/// Kills this process with SIGKILL if `LAKEPLANE_FAULT_KILL_AT` names `name`.
#[cfg(feature = "fault-injection")]
pub fn point(name: &str) {
    if std::env::var("LAKEPLANE_FAULT_KILL_AT").is_ok_and(|at| at == name) {
        tracing::warn!(point = name, "fault injection: killing this process");
        let pid = std::process::id().to_string();
        let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
        // The signal is delivered before `kill` returns; nothing after this point runs.
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
}

/// Without the `fault-injection` feature, nothing.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_name: &str) {}
