//! Headless Chromium driven through WebDriver: a `chromedriver` started by the test on a
//! free loopback port (Debian's `chromium` and `chromium-driver`, installed by `cargo
//! xtask test`), a fantoccini session on it, and the waits and screenshots the UI tests
//! use.
//!
//! Every wait is for a state of the DOM with a generous deadline, never a sleep that
//! passes for an assertion; a deadline that passes fails the test with the page's URL and
//! HTML and the server's output.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::server::{DEADLINE, Server};

/// Laptop window size of the screenshots.
pub const LAPTOP: (u32, u32) = (1366, 900);
/// Phone window size of the screenshots.
pub const PHONE: (u32, u32) = (390, 844);

/// A Chromium session looking at one server, closed (and its processes killed) on drop.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    /// The server's base URL.
    pub base: String,
    driver: Child,
    _profile: tempfile::TempDir,
    shots: Shots,
    server_output: Arc<Mutex<Vec<String>>>,
}

/// Where screenshots go: the committed set under `docs/screenshots/` when
/// `GANTRY_SCREENSHOTS=1`, else a temporary directory that goes away with the test.
enum Shots {
    Docs(PathBuf),
    Temp(tempfile::TempDir),
}

impl Browser {
    /// Starts chromedriver and a headless Chromium at laptop size, looking at `server`.
    pub async fn start(server: &Server) -> Browser {
        let profile = tempfile::tempdir().expect("tempdir");
        let (driver, port) = start_driver(profile.path().join("chromedriver.log"));
        let user_data = profile.path().join("user-data");
        std::fs::create_dir_all(&user_data).expect("mkdir");
        // These flags keep Chromium quiet on this machine: as root it needs
        // --no-sandbox, and without the background-networking ones its outbound
        // connections (which cannot succeed here) are refused many at a time.
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--window-size={},{}", LAPTOP.0, LAPTOP.1),
            format!("--user-data-dir={}", user_data.display()),
        ];
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "args": args },
        });
        let Value::Object(caps) = caps else {
            unreachable!("an object literal")
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| {
                let log = std::fs::read_to_string(profile.path().join("chromedriver.log"))
                    .unwrap_or_default();
                panic!("no WebDriver session: {e}\nchromedriver log:\n{log}")
            });
        let shots = if std::env::var("GANTRY_SCREENSHOTS").as_deref() == Ok("1") {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
            std::fs::create_dir_all(&dir).expect("mkdir docs/screenshots");
            Shots::Docs(dir)
        } else {
            Shots::Temp(tempfile::tempdir().expect("tempdir"))
        };
        let browser = Browser {
            client,
            base: server.url.clone(),
            driver,
            _profile: profile,
            shots,
            server_output: server.output_handle(),
        };
        browser.resize(LAPTOP).await;
        browser
    }

    /// Sets the size of the page's viewport (what a screenshot shows): the window is
    /// made larger by whatever its frame takes.
    pub async fn resize(&self, (width, height): (u32, u32)) {
        let mut outer = (width, height);
        for _ in 0..2 {
            self.client
                .set_window_size(outer.0, outer.1)
                .await
                .expect("set the window size");
            let inner = self
                .js("return [window.innerWidth, window.innerHeight]", vec![])
                .await;
            let (w, h) = (
                inner[0].as_u64().unwrap_or(0),
                inner[1].as_u64().unwrap_or(0),
            );
            if (w, h) == (u64::from(width), u64::from(height)) {
                return;
            }
            outer.0 = (u64::from(outer.0) + u64::from(width)).saturating_sub(w) as u32;
            outer.1 = (u64::from(outer.1) + u64::from(height)).saturating_sub(h) as u32;
        }
    }

    /// Opens `path` (relative to the server).
    pub async fn open(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("current url")
            .to_string()
    }

    /// Logs in with `token` on the login page, and waits for the page it leads to.
    pub async fn login(&self, token: &str) {
        self.open("/login").await;
        let field = self.wait("input#token[name=token]").await;
        field.send_keys(token).await.expect("type the token");
        self.wait("button#login-submit")
            .await
            .click()
            .await
            .expect("submit the login form");
        self.wait("nav#topnav #whoami").await;
    }

    /// The first element matching `css`, waiting until there is one.
    pub async fn wait(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(DEADLINE)
            .every(Duration::from_millis(100))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => self.fail(&format!("`{css}` ({e})")).await,
        }
    }

    /// Every element matching `css` now (maybe none).
    pub async fn all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"))
    }

    /// Whether an element matches `css` now.
    pub async fn has(&self, css: &str) -> bool {
        !self.all(css).await.is_empty()
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns its value.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits until the text of the first element matching `css` contains `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str) {
        let started = Instant::now();
        loop {
            let found = self
                .js(
                    "const e = document.querySelector(arguments[0]); \
                     return !!e && e.textContent.includes(arguments[1])",
                    vec![json!(css), json!(needle)],
                )
                .await;
            if found == json!(true) {
                return;
            }
            if started.elapsed() > DEADLINE {
                self.fail(&format!("{needle:?} in `{css}`")).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Fetches `href` from inside the page, so with the session's cookie; returns the
    /// status and the body's bytes.
    pub async fn fetch(&self, href: &str) -> (u16, Vec<u8>) {
        let script = r#"
            const [href, done] = arguments;
            fetch(href, { credentials: 'same-origin' })
              .then(r => r.arrayBuffer().then(b => done({
                status: r.status,
                hex: Array.from(new Uint8Array(b))
                  .map(x => x.toString(16).padStart(2, '0')).join(''),
              })))
              .catch(e => done({ error: String(e) }));
        "#;
        let answer = self
            .client
            .execute_async(script, vec![json!(href)])
            .await
            .unwrap_or_else(|e| panic!("fetch {href}: {e}"));
        if let Some(error) = answer.get("error") {
            panic!("fetch {href} failed in the page: {error}");
        }
        let status = answer["status"].as_u64().expect("status") as u16;
        let bytes = hex::decode(answer["hex"].as_str().expect("hex")).expect("hex body");
        (status, bytes)
    }

    /// Saves a screenshot of the window as `<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        let dir = match &self.shots {
            Shots::Docs(dir) => dir.clone(),
            Shots::Temp(dir) => dir.path().to_path_buf(),
        };
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write the screenshot");
    }

    /// Fails the test: what was awaited, the page and the server's output.
    pub async fn fail(&self, what: &str) -> ! {
        let url = self.client.current_url().await.map(|u| u.to_string());
        let source = self.client.source().await.unwrap_or_default();
        let server = self.server_output.lock().expect("lock").join("\n");
        panic!(
            "timed out waiting for {what}\nat {url:?}\npage:\n{source}\n\nserver output:\n{server}"
        )
    }

    /// Ends the WebDriver session (Chromium exits).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver leads its own process group, Chromium's processes included: one
        // signal stops all of them, also when the test failed before `close`.
        let group = nix::unistd::Pid::from_raw(self.driver.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.driver.wait();
    }
}

/// Starts chromedriver on a free loopback port; returns it and the port.
fn start_driver(log: PathBuf) -> (Child, u16) {
    let mut last = String::new();
    // A port found free can be taken by someone else before chromedriver binds it: then
    // it exits, and another port is tried.
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut cmd = Command::new("chromedriver");
        cmd.arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!("start chromedriver (Debian package chromium-driver; `cargo xtask test` installs it): {e}")
        });
        let started = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (child, port);
            }
            if let Ok(Some(status)) = child.try_wait() {
                last = format!("chromedriver exited with {status}");
                break;
            }
            if started.elapsed() > DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromedriver did not listen on port {port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("chromedriver did not start: {last}")
}
