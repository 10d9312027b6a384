//! `slapos.cookbook:userinfo`: the POSIX identity of the user rendering the instance
//! (`pw-name`, `pw-uid`, `pw-gid`, `pw-dir`, `pw-shell`, `gr-name`, `gr-gid`), from the user and
//! group databases (`getpwuid_r`, `getgrgid_r`: renders run in parallel).

use std::ffi::CStr;

use crate::error::Result;
use crate::recipes::Part;

/// `userinfo`.
pub fn userinfo(part: &mut Part) -> Result<()> {
    // SAFETY: getuid and getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let user = passwd(uid).ok_or_else(|| part.error(format!("no user has uid {uid}")))?;
    let group = group(gid).ok_or_else(|| part.error(format!("no group has gid {gid}")))?;
    part.set("pw-name", user.0);
    part.set("pw-uid", uid.to_string());
    part.set("pw-gid", user.1.to_string());
    part.set("pw-dir", user.2);
    part.set("pw-shell", user.3);
    part.set("gr-name", group);
    part.set("gr-gid", gid.to_string());
    Ok(())
}

/// The name of the user rendering the instance (the owner of its partition), if it has one.
pub(crate) fn user_name() -> Option<String> {
    // SAFETY: getuid cannot fail.
    passwd(unsafe { libc::getuid() }).map(|u| u.0)
}

fn text(p: *const libc::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the database functions return NUL-terminated strings inside our buffer.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Name, gid, home and shell of `uid`.
fn passwd(uid: libc::uid_t) -> Option<(String, libc::gid_t, String, String)> {
    let mut buf = vec![0 as libc::c_char; 4096];
    loop {
        // SAFETY: `pwd` and `buf` outlive the call, whose results point into `buf`.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || found.is_null() {
            return None;
        }
        return Some((
            text(pwd.pw_name),
            pwd.pw_gid,
            text(pwd.pw_dir),
            text(pwd.pw_shell),
        ));
    }
}

/// The name of group `gid`.
fn group(gid: libc::gid_t) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    loop {
        // SAFETY: as in `passwd`.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        let rc =
            unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut found) };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || found.is_null() {
            return None;
        }
        return Some(text(grp.gr_name));
    }
}
