//! Processes: the output of the ones a test starts, and the others on this machine,
//! found through `/proc`.

use std::io::{BufRead, BufReader, Read};
use std::process::Child;
use std::sync::{Arc, Mutex, mpsc};

/// Every line `child` prints (stdout and stderr, interleaved as they come), kept for
/// failure messages and also sent down the channel as it arrives. Both streams are
/// drained for the whole life of the process, so that a chatty one never blocks on a
/// full pipe.
pub fn capture(child: &mut Child) -> (Arc<Mutex<Vec<String>>>, mpsc::Receiver<String>) {
    let output = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel::<String>();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let output = output.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                output.lock().expect("lock").push(line.clone());
                let _ = tx.send(line);
            }
        });
    }
    (output, rx)
}

/// Pids of processes whose command line is `sleep ARG`.
pub fn processes_with_arg(arg: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let parts: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                parts.len() >= 2 && parts[0].ends_with(b"sleep") && parts[1] == arg.as_bytes()
            })
        })
        .collect()
}
