//! `mfa-bulk sim` as a child process, and generated tenants.

use mfa_bulk::sim;
use serde_json::Value;

use super::sim_common::http;

#[test]
fn sim_command_prints_its_address_and_serves() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mfa-bulk"))
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--users",
            "600",
            "--seed",
            "7",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .map(str::to_string);
    let result = url.clone().map(|url| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let v: Value = http()
                .get(format!("{url}/_sim/state"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v.as_array().unwrap().len()
        })
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(url.unwrap().starts_with("http://127.0.0.1:"), "{line}");
    let n = result.unwrap();
    assert!(n > 550 && n <= 600, "{n}");
}

#[test]
fn sim_command_refuses_non_loopback() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mfa-bulk"))
        .args(["sim", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[test]
fn generated_tenant_has_awkward_names() {
    let t = sim::generate_tenant(400, 3);
    let upns: Vec<&str> = t
        .users
        .iter()
        .map(|u| u.user_principal_name.as_str())
        .collect();
    assert!(upns.iter().any(|u| u.contains("#EXT#")));
    assert!(upns.iter().any(|u| u.starts_with('$')));
    assert!(upns.iter().any(|u| u.contains('\'')));
    assert!(upns.iter().any(|u| u.chars().any(|c| c.is_uppercase())));
    assert!(t
        .users
        .iter()
        .any(|u| u.display_name.contains('ü') || u.display_name.contains('ø')));
    let with_methods = t.users.iter().filter(|u| !u.methods.is_empty()).count();
    assert!(with_methods > 15 && with_methods < 80, "{with_methods}");
    assert!(t.users.iter().any(|u| u.per_user_mfa_state == "enforced"));
    // Same seed, same tenant.
    let again = sim::generate_tenant(400, 3);
    assert_eq!(again.users[10].id, t.users[10].id);
}
