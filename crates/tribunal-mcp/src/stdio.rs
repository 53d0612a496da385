//! The stdio transport: the proxy runs the server's command, reads the client's JSON-RPC
//! messages (one per line) on standard input and the server's on the command's standard
//! output, and passes each on after [`Proxy`] has seen it. The server's standard error is
//! the proxy's.

use crate::{read_client_message, read_server_message, Action, Error, Proxy, Read};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// Runs `command` behind the proxy until the client closes standard input or the server
/// exits; returns the server's exit code.
pub fn run(proxy: Proxy, command: &[String]) -> Result<i32, Error> {
    let (program, args) = command.split_first().ok_or(Error::NoCommand)?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::Io {
            path: program.clone(),
            source: e,
        })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io {
            path: "tokio runtime".into(),
            source: e,
        })?;
    let rt = Arc::new(rt);
    let proxy = Arc::new(proxy);
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let to_server = Arc::new(Mutex::new(child.stdin.take().ok_or(Error::NoCommand)?));
    let server_out = child.stdout.take().ok_or(Error::NoCommand)?;

    // Server → client: recorded, then passed on unchanged.
    let reader = {
        let (rt, proxy, out) = (rt.clone(), proxy.clone(), out.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(server_out).lines() {
                let Ok(line) = line else { break };
                let written = match read_server_message(line.as_bytes()) {
                    Read::Json(v) => {
                        for m in messages(&v) {
                            rt.block_on(proxy.from_server(m, crate::Scope::ONE));
                        }
                        write_line(&out, &line)
                    }
                    Read::Refused(answers) => {
                        eprintln!(
                            "tribunal mcp: a server message that names a key twice was not passed on"
                        );
                        answers
                            .iter()
                            .try_for_each(|a| write_line(&out, &a.to_string()))
                    }
                    Read::NotJson => write_line(&out, &line),
                };
                if written.is_err() {
                    break;
                }
            }
        })
    };

    // Client → server: each tools/call asked about first.
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let forward = match read_client_message(line.as_bytes()) {
            Read::Json(Value::Array(batch)) => {
                let mut pass = Vec::new();
                for m in batch {
                    match rt.block_on(proxy.from_client(&m)) {
                        Action::Forward => pass.push(m),
                        Action::Reply(r) => {
                            let _ = write_line(&out, &r.to_string());
                        }
                        Action::Drop => eprintln!("{DROPPED}"),
                    }
                }
                (!pass.is_empty()).then(|| Value::Array(pass).to_string())
            }
            Read::Json(v) => match rt.block_on(proxy.from_client(&v)) {
                Action::Forward => Some(line),
                Action::Reply(r) => {
                    let _ = write_line(&out, &r.to_string());
                    None
                }
                Action::Drop => {
                    eprintln!("{DROPPED}");
                    None
                }
            },
            Read::Refused(answers) => {
                eprintln!(
                    "tribunal mcp: a message the gate cannot read one way only was not passed on"
                );
                for a in answers {
                    let _ = write_line(&out, &a.to_string());
                }
                None
            }
            // Only a server's message is read as not JSON.
            Read::NotJson => None,
        };
        if let Some(text) = forward {
            if write_line(&to_server, &text).is_err() {
                break;
            }
        }
    }
    // The client is gone: closing the server's input lets it exit.
    drop(to_server);
    let status = child.wait().map_err(|e| Error::Io {
        path: program.clone(),
        source: e,
    })?;
    let _ = reader.join();
    Ok(status.code().unwrap_or(1))
}

/// What the proxy says when it drops a call sent as a notification.
const DROPPED: &str =
    "tribunal mcp: a tools/call without an id (a notification) was not passed on: a call needs an id to be judged and answered";

fn messages(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    }
}

fn write_line<W: Write>(w: &Mutex<W>, line: &str) -> std::io::Result<()> {
    let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
    w.write_all(line.as_bytes())?;
    w.write_all(b"\n")?;
    w.flush()
}
