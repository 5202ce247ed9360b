//! Named failpoints in the build's phases, for the fault-injection tests
//! (tests/it/faults.rs). Built only with the `failpoints` feature (the test
//! build has it); without it [`hit`] is an empty function.
//!
//! `FAILPOINTS="name=return(crash)"` ends the process at that point, as a
//! power cut or kill -9 would (no destructor, no clean-up, exit code
//! [`CRASH_EXIT`]); `name=return(io)` makes the operation there fail with
//! an I/O error, `name=return(nospace)` with "no space left on device";
//! `name=sleep(ms)` holds it there. Counts select the n-th pass:
//! `name=2*off->return(crash)` crashes at the third.

/// The exit code of a process crashed at a failpoint.
pub const CRASH_EXIT: i32 = 86;

/// Every failpoint, in the order a build passes them. The fault matrix
/// triggers each one.
pub const ALL: &[&str] = &[
    "lock.taken",
    "manifest.write",
    "stage.written",
    "model.before_assertions",
    "incremental.merge",
    "snapshot.merge",
    "delta.before_commit",
    "delta.after_commit",
    "commit.before_journal",
    "commit.after_journal",
    "commit.before_publish",
    "commit.after_publish",
    "commit.before_cleanup",
    "history.write",
    "state.write",
    "artifacts.write",
];

/// Passes the failpoint `name`: returns the injected error, or ends the
/// process, when the failpoint is configured so.
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) -> std::io::Result<()> {
    debug_assert!(ALL.contains(&name), "undeclared failpoint {name}");
    fail::fail_point!(name, |arg: Option<String>| inject(name, arg.as_deref()));
    Ok(())
}

/// Passes the failpoint `name` (a build without the `failpoints` feature).
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) -> std::io::Result<()> {
    Ok(())
}

#[cfg(feature = "failpoints")]
fn inject(name: &str, action: Option<&str>) -> std::io::Result<()> {
    match action {
        Some("crash") => {
            eprintln!("failpoint `{name}`: crashing");
            std::process::exit(CRASH_EXIT)
        }
        Some("nospace") => Err(std::io::Error::from_raw_os_error(28)),
        _ => Err(std::io::Error::other(format!("injected I/O error at failpoint `{name}`"))),
    }
}

/// Reads the `FAILPOINTS` variable; call once at start-up. Returns the
/// guard that keeps them configured.
#[cfg(feature = "failpoints")]
pub fn setup() -> Option<fail::FailScenario<'static>> {
    std::env::var_os("FAILPOINTS").map(|_| fail::FailScenario::setup())
}

/// Reads nothing (a build without the `failpoints` feature).
#[cfg(not(feature = "failpoints"))]
pub fn setup() -> Option<()> {
    None
}
