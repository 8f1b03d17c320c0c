//! The `reauth-testkit` binary: its printed quickstart really works.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Kills the server process even if an assertion fails.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary and returns it with its quickstart text (up to "Ctrl-C").
fn start(args: &[&str]) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reauth-testkit"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut text = String::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("quickstart not printed in time");
        text.push_str(&line);
        text.push('\n');
        if line.starts_with("Ctrl-C") {
            return (running, text);
        }
    }
}

#[test]
fn printed_curl_commands_work() {
    let (_server, text) = start(&["--port", "0"]);
    assert!(text.contains("http://127.0.0.1:"), "{text}");
    let curls: Vec<&str> = text.lines().filter(|l| l.starts_with("curl ")).collect();
    assert_eq!(curls.len(), 4, "{text}");
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("curl not installed: only the quickstart text was checked");
        return;
    }
    let expected = [
        r#""name":"Item 1""#,
        r#""refresh_token":"rt_"#,
        r#""token_type":"Bearer""#,
        r#""accessToken":"at_"#,
    ];
    for (cmd, want) in curls.iter().zip(expected) {
        let out = Command::new("sh")
            .args(["-c", &format!("{cmd} --max-time 10")])
            .output()
            .unwrap();
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(body.contains(want), "{cmd}\n=> {body}");
    }
}

#[test]
fn queued_faults_and_bad_arguments() {
    let (_server, text) = start(&["--port", "0", "--fault", "503:2s", "--fault", "hang"]);
    assert!(
        text.contains("queued faults for the next token calls: 503:2s, hang"),
        "{text}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_reauth-testkit"))
        .args(["--fault", "explode"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("valid faults") && err.contains("invalid_grant"),
        "{err}"
    );

    let help = Command::new(env!("CARGO_BIN_EXE_reauth-testkit"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--port"));
}

/// The value after `marker` on the quickstart line that contains it, up to a space.
fn url_after<'a>(text: &'a str, marker: &str) -> &'a str {
    let line = text.lines().find(|l| l.contains(marker)).expect(marker);
    let rest = &line[line.find(marker).unwrap() + marker.len()..];
    rest.trim_start()
        .split(' ')
        .next()
        .unwrap()
        .trim_end_matches('/')
}

#[tokio::test]
async fn admin_interface_drives_the_binary_from_another_process() {
    let (_server, text) = start(&["--port", "0", "--admin"]);
    let base = url_after(&text, "listening (HTTP/1.1 and h2c) on").to_owned();
    let admin = url_after(&text, "  admin").to_owned();
    assert!(
        admin.starts_with("http://127.0.0.1:") && admin.ends_with("/_admin"),
        "{text}"
    );
    assert!(!admin.starts_with(&base), "admin has its own port: {text}");
    common::bounded(async {
        let c = common::h1();
        let post = |route: &str| c.post(format!("{admin}/{route}")).send();
        let json = |r: reqwest::Response| async move {
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap()
        };
        let item = |at: String| c.get(format!("{base}/api/items/1")).bearer_auth(at).send();
        let refresh = |rt: String| {
            c.post(format!("{base}/oauth/token"))
                .basic_auth("reauth-test", Some("s3cret"))
                .header("content-type", common::FORM)
                .body(format!("grant_type=refresh_token&refresh_token={rt}"))
                .send()
        };

        let login = json(post("tokens").await.unwrap()).await;
        let at = login["access_token"].as_str().unwrap().to_owned();
        let rt = login["refresh_token"].as_str().unwrap().to_owned();
        assert_eq!(item(at.clone()).await.unwrap().status(), 200);
        assert_eq!(json(post("expire").await.unwrap()).await["expired"], true);
        assert_eq!(item(at).await.unwrap().status(), 401);

        let queued = json(post("faults?fault=503:2s&count=2").await.unwrap()).await;
        assert_eq!(queued["pending"], 2);
        let resp = refresh(rt.clone()).await.unwrap();
        assert_eq!(
            (resp.status().as_u16(), common::header(&resp, "retry-after")),
            (503, "2".to_owned())
        );
        let stats = json(c.get(format!("{admin}/stats")).send().await.unwrap()).await;
        assert_eq!(stats["token_calls"], 1);
        assert_eq!(stats["faults_injected"]["unavailable"], 1);
        assert_eq!(
            stats["api_by_status"],
            serde_json::json!({"200": 1, "401": 1})
        );

        let reset = json(post("reset").await.unwrap()).await;
        assert_eq!(reset["faults_cleared"], 1);
        let stats = json(c.get(format!("{admin}/stats")).send().await.unwrap()).await;
        assert_eq!(
            (stats["token_calls"].as_u64(), stats["api_calls"].as_u64()),
            (Some(0), Some(0))
        );
        // The second queued 503 is gone: the refresh goes through.
        assert_eq!(refresh(rt.clone()).await.unwrap().status(), 200);

        let family = login["family"].as_str().unwrap();
        let revoked = json(post(&format!("revoke?family={family}")).await.unwrap()).await;
        assert_eq!(revoked["revoked"], true);
        let bad = post("faults?fault=explode").await.unwrap();
        assert_eq!(bad.status(), 400);
        assert!(bad.text().await.unwrap().contains("rotate-drop"));
    })
    .await;
}

#[test]
fn printed_admin_curl_commands_work() {
    let (_server, text) = start(&["--port", "0", "--admin"]);
    let curls: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("curl ") && l.contains("/_admin/"))
        .collect();
    let expected = [
        ("/_admin/tokens", r#""access_token":"at_"#),
        ("/_admin/expire", r#""expired":true"#),
        ("/_admin/revoke?family=family-1", r#""revoked":true"#),
        ("/_admin/faults?fault=503:2s&count=3", r#""queued":3"#),
        ("/_admin/faults", r#""pending":3"#),
        ("/_admin/faults", r#""cleared":3"#),
        ("/_admin/stats", r#""token_calls":0"#),
        ("/_admin/reset", r#""reset":true"#),
    ];
    assert_eq!(curls.len(), expected.len(), "{text}");
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("curl not installed: only the quickstart text was checked");
        return;
    }
    for (cmd, (route, want)) in curls.iter().zip(expected) {
        assert!(cmd.contains(route), "{cmd} should call {route}");
        let out = Command::new("sh")
            .args(["-c", &format!("{cmd} --max-time 10")])
            .output()
            .unwrap();
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(body.contains(want), "{cmd}\n=> {body}");
    }
}

#[test]
fn admin_port_needs_admin_and_admin_is_off_by_default() {
    let out = Command::new(env!("CARGO_BIN_EXE_reauth-testkit"))
        .args(["--port", "0", "--admin-port", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--admin-port needs --admin"));

    let (_server, text) = start(&["--port", "0"]);
    assert!(!text.contains("/_admin"), "{text}");

    let help = Command::new(env!("CARGO_BIN_EXE_reauth-testkit"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for route in [
        "/_admin/tokens",
        "/_admin/expire",
        "/_admin/revoke",
        "/_admin/faults",
        "/_admin/stats",
        "/_admin/reset",
    ] {
        assert!(help.contains(route), "--help lacks {route}");
    }
}
