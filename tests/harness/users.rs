//! The second users of the trust tests (issue 16): created with `groupadd` and `useradd` when
//! missing (these tests run as root, as CI does), and commands run as one of them.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// An attacker or a reader: a user outside every group below.
pub const OTHER: &str = "persist-t-other";
/// A user in the group [`GROUP`] that shares a store.
pub const MATE: &str = "persist-t-mate";
pub const GROUP: &str = "persist-t-share";

/// The test users and the group's ids.
#[derive(Clone, Copy, Debug)]
pub struct Users {
    pub other: u32,
    /// [`OTHER`]'s own group.
    pub other_gid: u32,
    pub mate: u32,
    /// [`GROUP`], which [`MATE`] is a member of.
    pub share: u32,
}

/// Runs `cmd` until it succeeds; `useradd` and `groupadd` fail while another test process holds
/// the user database's lock.
fn retry(what: &str, mut cmd: impl FnMut() -> Command, done: impl Fn() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        let _ = cmd().output();
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        done(),
        "could not {what} (these tests run as root, as CI does)"
    );
}

fn id_of(flag: &str, name: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, name]).output().ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

fn gid_of_group(name: &str) -> Option<u32> {
    let out = Command::new("getent").args(["group", name]).output().ok()?;
    String::from_utf8(out.stdout)
        .ok()?
        .split(':')
        .nth(2)?
        .trim()
        .parse()
        .ok()
}

pub fn geteuid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// The test users and group, created if missing (idempotent).
pub fn users() -> Users {
    assert_eq!(
        geteuid(),
        0,
        "the trust tests need root (CI runs as root): they create users with useradd"
    );
    retry(
        "create the group",
        || {
            let mut c = Command::new("groupadd");
            c.args(["-f", GROUP]);
            c
        },
        || gid_of_group(GROUP).is_some(),
    );
    for (name, extra) in [(OTHER, None), (MATE, Some(GROUP))] {
        retry(
            &format!("create the user {name}"),
            || {
                let mut c = Command::new("useradd");
                c.args(["-M", "-s", "/bin/sh", "-U"]);
                if let Some(g) = extra {
                    c.args(["-G", g]);
                }
                c.arg(name);
                c
            },
            || id_of("-u", name).is_some(),
        );
    }
    Users {
        other: id_of("-u", OTHER).unwrap(),
        other_gid: id_of("-g", OTHER).unwrap(),
        mate: id_of("-u", MATE).unwrap(),
        share: gid_of_group(GROUP).unwrap(),
    }
}

/// `cmd` set up to run as `uid`:`gid` with the supplementary `groups` only.
pub fn run_as(cmd: &mut Command, uid: u32, gid: u32, groups: &[u32]) {
    let groups: Vec<libc::gid_t> = groups.to_vec();
    // SAFETY: only async-signal-safe calls (setgroups, setgid, setuid) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Runs a shell command as `uid`:`gid` with `groups`; returns its exit status and stderr.
pub fn sh_as(uid: u32, gid: u32, groups: &[u32], script: &str) -> (bool, String) {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", script]);
    run_as(&mut cmd, uid, gid, groups);
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
