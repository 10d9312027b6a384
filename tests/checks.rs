//! The cookbook's check recipes (`check_parameter`, `check_url_available`) and `urlparse`,
//! end to end through the binary: a real deploy of corpus sections, the promise scripts run.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};

use crate::common::{have, Root, TestEnv};

/// Runs the promise script `name` of the partition's `bin`/`etc/promise`.
fn run(p: &Path, name: &str) -> Output {
    Command::new(p.join(name))
        .output()
        .expect("run the promise")
}

/// Answers every HTTP request on a fresh port with `status`; the port.
fn http(status: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let head =
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = s.write_all(head.as_bytes());
        }
    });
    port
}

#[test]
fn check_parameter_promises() {
    if !have("check_parameter_promises", &["python3"]) {
        return;
    }
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = env.jinja2_release(
        "[buildout]\nparts = ready not-ready same other quoted v6 not-v6 v4\n\n\
         [directory]\nrecipe = slapos.cookbook:mkdirectory\nbin = ${buildout:directory}/bin\n\n\
         # stack/erp5/instance-erp5.cfg.in, [check-test-runner-url...] and [check-software-url...]\n\
         [ready]\nrecipe = slapos.cookbook:check_parameter\nvalue = http://[::1]:2150\n\
         expected-not-value = not-ready\nexpected-value =\npath = ${directory:bin}/${:_buildout_section_name_}\n\n\
         [not-ready]\n<= ready\nvalue = not-ready\n\n\
         [same]\nrecipe = slapos.cookbook:check_parameter\nvalue = https://lab.example/sr.cfg\n\
         expected-not-value =\nexpected-value = https://lab.example/sr.cfg\n\
         path = ${directory:bin}/${:_buildout_section_name_}\n\n\
         [other]\n<= same\nvalue = https://lab.example/old.cfg\n\n\
         [quoted]\n<= same\nvalue = it's \"\"\" + __import__('os').system('touch pwned') + '\n\
         expected-value = it's \"\"\" + __import__('os').system('touch pwned') + '\n\n\
         [v6]\nrecipe = slapos.cookbook:check_parameter\nexpected-type = ipv6\nvalue = 2001:db8::1\n\
         path = ${directory:bin}/${:_buildout_section_name_}\n\n\
         [not-v6]\n<= v6\nvalue = 10.0.0.1\n\n\
         [v4]\n<= v6\nexpected-type = ipv4\nvalue = 192.0.2.1\n",
    );
    r.ok(&["instance", "create", "c", "--software", &software]);
    let p = r.partition("c").join("bin");
    let same = std::fs::read_to_string(p.join("same")).expect("script");
    assert!(
        same.contains("value = 'https://lab.example/sr.cfg'\nexpected = 'https://lab.example/sr.cfg'\nnot_expected = ''\n"),
        "{same}"
    );
    for ok in ["ready", "same", "quoted", "v6", "v4"] {
        let out = run(&p, ok);
        assert_eq!(out.status.code(), Some(0), "{ok}: {out:?}");
    }
    let out = run(&p, "not-ready");
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "FAIL: not-ready == not-ready\n"
    );
    let out = run(&p, "other");
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "FAIL: https://lab.example/old.cfg != https://lab.example/sr.cfg\n"
    );
    assert_eq!(run(&p, "not-v6").status.code(), Some(127));
    assert!(!p.join("pwned").exists() && !r.partition("c").join("pwned").exists());
}

#[test]
fn check_url_available_promises() {
    if !have("check_url_available_promises", &["dash", "curl"]) {
        return;
    }
    let env = TestEnv::new();
    let r = Root::new(&env);
    let up = http("200 OK");
    let locked = http("401 Unauthorized");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let which = |t: &str| {
        let out = Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output();
        String::from_utf8_lossy(&out.expect("sh").stdout)
            .trim()
            .to_owned()
    };
    let software = env.jinja2_release(&format!(
        "[buildout]\nparts = up down locked secure injected\n\n\
         [directory]\nrecipe = slapos.cookbook:mkdirectory\netc = ${{buildout:directory}}/etc\n\
         etc.promise = ${{:etc}}/promise\n\n\
         # software/clammit/instance.cfg.in\n\
         [up]\nrecipe = slapos.cookbook:check_url_available\n\
         path = ${{directory:etc.promise}}/${{:_buildout_section_name_}}.py\n\
         url = http://127.0.0.1:{up}/clammit/readyz\ndash_path = {dash}\ncurl_path = {curl}\n\n\
         [down]\n<= up\nurl = http://127.0.0.1:{closed}/\n\n\
         [locked]\n<= up\nurl = http://127.0.0.1:{locked}/\n\n\
         [secure]\n<= locked\ncheck-secure = 1\n\n\
         [injected]\n<= up\nurl = http://127.0.0.1:{up}/$(touch pwned)`touch pwned`\"; touch pwned\n",
        dash = which("dash"),
        curl = which("curl"),
    ));
    r.ok(&["instance", "create", "u", "--software", &software]);
    let part = r.partition("u");
    let p = part.join("etc/promise");
    let script = std::fs::read_to_string(p.join("up.py")).expect("script");
    assert!(
        script.starts_with(&format!("#!{}\n", which("dash"))),
        "{script}"
    );
    assert!(
        script.contains(&format!(
            "F_TIMEOUT={}/etc/promise_timeout\n",
            part.display()
        )),
        "{script}"
    );
    assert_eq!(
        run(&p, "up.py").status.code(),
        Some(0),
        "{:?}",
        run(&p, "up.py")
    );
    let down = run(&p, "down.py");
    assert_eq!(down.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("is not available (server not reachable)")
    );
    let locked = run(&p, "locked.py");
    assert_eq!(locked.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&locked.stderr).contains("(returned 401, expected 200)"),
        "{locked:?}"
    );
    let secure = run(&p, "secure.py");
    assert_eq!(secure.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&secure.stderr).contains("is protected (returned 401)"));
    let injected = Command::new(p.join("injected.py"))
        .current_dir(&part)
        .output()
        .expect("run");
    // curl is handed the URL as it is, which it finds malformed
    assert_eq!(injected.status.code(), Some(1), "{injected:?}");
    assert!(String::from_utf8_lossy(&injected.stderr).starts_with("URL malformed: http"));
    assert!(!part.join("pwned").exists());
    // a status code that is not a number: an error naming the option, nothing deployed
    let bad = env.jinja2_release(
        "[buildout]\nparts = up\n\n[up]\nrecipe = slapos.cookbook:check_url_available\n\
         path = ${buildout:directory}/up\nurl = http://x/\ndash_path = /bin/dash\n\
         curl_path = /usr/bin/curl\nhttp_code = 200 ]; then touch pwned; fi; if [ 1\n",
    );
    let out = r.run(&["instance", "create", "bad", "--software", &bad]);
    assert_ne!(out.code, 0);
    let err = &out.stderr;
    assert!(
        err.contains("[up]") && err.contains("is not an integer"),
        "{err}"
    );
    assert!(!r.partition("bad").exists());
}

#[test]
fn urlparse_sets_the_parts_of_the_url() {
    let env = TestEnv::new();
    let r = Root::new(&env);
    let software = env.jinja2_release(
        "[buildout]\nparts = page\n\n\
         # software/gitlab/instance-gitlab.cfg.in\n\
         [external-url]\nrecipe  = slapos.cookbook:urlparse\n\
         url = HTTPS://git:pw@Lab.Example.com:0443/gitlab/;v1?a=b#top\n\n\
         [page]\nrecipe = slapos.recipe.template\noutput = ${buildout:directory}/url\n\
         inline = ${external-url:scheme} ${external-url:username} ${external-url:password} \
         ${external-url:host} ${external-url:port} ${external-url:path} ${external-url:params} \
         ${external-url:query} ${external-url:fragment}|${:bare}\n\
         bare = ${bare:scheme}${bare:username}${bare:port}/${bare:host}/${bare:path}\n\n\
         [bare]\nrecipe = slapos.cookbook:urlparse\nurl = //h/p/\n",
    );
    r.ok(&["instance", "create", "g", "--software", &software]);
    let text = std::fs::read_to_string(r.partition("g").join("url")).expect("page");
    assert_eq!(
        text,
        "https git pw lab.example.com 443 gitlab v1 a=b top|/h/p"
    );
    let bad = env.jinja2_release(
        "[buildout]\nparts = u\n\n[u]\nrecipe = slapos.cookbook:urlparse\nurl = http://h:8x/\n",
    );
    let out = r.run(&["instance", "create", "bad", "--software", &bad]);
    assert_ne!(out.code, 0);
    let err = &out.stderr;
    assert!(
        err.contains("[u]") && err.contains("Port could not be cast to integer value as '8x'"),
        "{err}"
    );
    assert!(!r.partition("bad").exists());
}
