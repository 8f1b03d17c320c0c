//! The `reauth-testkit` binary: its printed quickstart really works.

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
