//! What the benchmarks share: option dictionaries for D-Bus calls, /proc readings of the
//! daemon (RSS, CPU time), rates, and the loopback ceiling's pieces (a discard sink, curl).
#![allow(dead_code)] // each benchmark uses its own subset

use std::time::Duration;

use tokio::io::AsyncReadExt;

use zbus::zvariant::{OwnedValue, Value};

pub type Dict = std::collections::HashMap<String, OwnedValue>;

pub fn dict(pairs: &[(&str, Value<'_>)]) -> Dict {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.try_to_owned().unwrap()))
        .collect()
}

pub fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

/// A field of /proc/PID/status, in kB.
pub fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_comm = &text[text.rfind(')').map_or(0, |i| i + 2)..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
}

/// A TCP server that reads and throws away everything, answering each request with 200 once
/// its body is in: the loopback ceiling for an HTTP upload.
pub async fn discard_sink() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 20];
                let mut head = Vec::new();
                // Read headers, find Content-Length, then drain the body.
                let (length, mut got) = loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                    if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                        let text = String::from_utf8_lossy(&head[..end]).to_lowercase();
                        let length: u64 = text
                            .lines()
                            .find_map(|l| {
                                l.strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        break (length, (head.len() - end - 4) as u64);
                    }
                };
                while got < length {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    got += n as u64;
                }
                use tokio::io::AsyncWriteExt;
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnull")
                    .await;
            });
        }
    });
    port
}

pub fn curl_ok() -> bool {
    std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}
