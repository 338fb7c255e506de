//! Headless Chromium or Firefox driven through WebDriver: the browser's driver started by
//! the test on a free loopback port (`chromedriver` from Debian's `chromium-driver`;
//! `geckodriver` from crates.io for Debian's `firefox-esr`; `cargo xtask test` installs
//! them), a fantoccini session on it, and the waits and screenshots the UI tests use.
//!
//! The two sessions differ only in how they are started ([`Kind`]); every wait and action
//! is plain W3C WebDriver, so a test runs unchanged in both.
//!
//! Every wait is for a state of the DOM with a generous deadline, never a sleep that
//! passes for an assertion; a deadline that passes fails the test with the page's URL and
//! HTML and the server's output.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
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

/// Which browser a test drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Debian's `chromium`, through `chromedriver`.
    Chromium,
    /// Debian's `firefox-esr` (or a `firefox`), through `geckodriver`.
    Firefox,
}

impl Kind {
    /// The driver program, and where it comes from (for the error when it is missing).
    fn driver(self) -> (&'static str, &'static str) {
        match self {
            Kind::Chromium => ("chromedriver", "Debian package chromium-driver"),
            Kind::Firefox => (
                "geckodriver",
                "`cargo install --locked geckodriver`; cargo xtask test builds it",
            ),
        }
    }

    /// The driver's command line: listen on `port` of the loopback interface; anything it
    /// keeps (logs, Firefox's profile) goes under `dir`.
    fn driver_command(self, port: u16, dir: &Path) -> Command {
        let (program, _) = self.driver();
        let mut cmd = Command::new(program);
        match self {
            Kind::Chromium => {
                cmd.arg(format!("--port={port}")).arg(format!(
                    "--log-path={}",
                    dir.join("chromedriver.log").display()
                ));
            }
            Kind::Firefox => {
                // geckodriver asks the system for a free Marionette port (and, told so,
                // for a BiDi one), so parallel tests do not collide. Its log (and
                // Firefox's output) is its stdout.
                cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--websocket-port", "0"])
                    // Mozilla's switch for its own test runs, inherited by Firefox (the
                    // `env` capability is Android-only): connections to anything but the
                    // loopback interface are refused, and the remote-settings server
                    // preference of `firefox_prefs` is honoured, which release builds
                    // otherwise ignore.
                    .env("MOZ_DISABLE_NONLOCAL_CONNECTIONS", "1");
            }
        }
        cmd
    }

    /// The driver's log, for failure messages.
    fn driver_log(self, dir: &Path) -> PathBuf {
        match self {
            Kind::Chromium => dir.join("chromedriver.log"),
            Kind::Firefox => dir.join("geckodriver.log"),
        }
    }

    /// The session's capabilities: headless, and quiet (the machine has no network; a
    /// browser trying to reach it only adds noise and delays).
    fn capabilities(self, dir: &Path) -> Value {
        match self {
            Kind::Chromium => {
                let user_data = dir.join("user-data");
                std::fs::create_dir_all(&user_data).expect("mkdir");
                // As root Chromium needs --no-sandbox, and without the
                // background-networking flags its outbound connections (which cannot
                // succeed here) are refused many at a time.
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
                json!({
                    "browserName": "chrome",
                    "goog:chromeOptions": { "args": args },
                })
            }
            Kind::Firefox => {
                // A fresh profile per session, made here rather than by geckodriver (which
                // adds its preferences to it) so that it can hold a userChrome.css: the
                // browser's own toolbars keep a window at least 500 px wide, and the
                // phone-width screenshots need 390.
                let profile = dir.join("firefox-profile");
                std::fs::create_dir_all(profile.join("chrome")).expect("mkdir");
                std::fs::write(
                    profile.join("chrome/userChrome.css"),
                    ":root, #main-window, #navigator-toolbox, toolbar, #nav-bar, \
                     #TabsToolbar, #urlbar-container, #search-container \
                     { min-width: 0 !important; }\n",
                )
                .expect("write userChrome.css");
                let Value::Object(mut prefs) = firefox_prefs() else {
                    unreachable!("an object")
                };
                prefs.insert(
                    "toolkit.legacyUserProfileCustomizations.stylesheets".to_owned(),
                    json!(true),
                );
                json!({
                    "browserName": "firefox",
                    "moz:firefoxOptions": {
                        "binary": firefox_binary(),
                        "args": ["-headless", "-profile", profile],
                        "prefs": prefs,
                    },
                })
            }
        }
    }
}

/// Preferences of the Firefox sessions (on top of geckodriver's own) that keep it off the
/// network: no updates, telemetry, studies, captive-portal or connectivity checks, safe
/// browsing lists, remote settings, DNS-over-HTTPS, push, prefetching or start pages. The
/// tests only talk to the server on the loopback interface.
fn firefox_prefs() -> Value {
    // Entry by entry: one `json!` object this long exceeds the macro recursion limit.
    let prefs = [
        ("app.update.disabledForTesting", json!(true)),
        ("app.update.auto", json!(false)),
        ("app.normandy.enabled", json!(false)),
        ("app.normandy.api_url", json!("")),
        ("app.shield.optoutstudies.enabled", json!(false)),
        ("browser.discovery.enabled", json!(false)),
        ("browser.newtabpage.enabled", json!(false)),
        ("browser.ping-centre.telemetry", json!(false)),
        ("browser.region.network.url", json!("")),
        ("browser.region.update.enabled", json!(false)),
        ("browser.safebrowsing.blockedURIs.enabled", json!(false)),
        ("browser.safebrowsing.downloads.enabled", json!(false)),
        (
            "browser.safebrowsing.downloads.remote.enabled",
            json!(false),
        ),
        ("browser.safebrowsing.malware.enabled", json!(false)),
        ("browser.safebrowsing.phishing.enabled", json!(false)),
        ("browser.safebrowsing.provider.google4.updateURL", json!("")),
        ("browser.safebrowsing.provider.mozilla.updateURL", json!("")),
        ("browser.search.update", json!(false)),
        ("browser.shell.checkDefaultBrowser", json!(false)),
        ("browser.startup.homepage_override.mstone", json!("ignore")),
        ("browser.startup.page", json!(0)),
        ("browser.topsites.contile.enabled", json!(false)),
        ("datareporting.healthreport.uploadEnabled", json!(false)),
        ("datareporting.policy.dataSubmissionEnabled", json!(false)),
        ("dom.push.connection.enabled", json!(false)),
        ("extensions.blocklist.enabled", json!(false)),
        ("extensions.getAddons.cache.enabled", json!(false)),
        ("extensions.update.enabled", json!(false)),
        ("extensions.systemAddon.update.enabled", json!(false)),
        ("geo.provider.network.url", json!("")),
        ("identity.fxaccounts.enabled", json!(false)),
        ("media.gmp-manager.updateEnabled", json!(false)),
        ("network.captive-portal-service.enabled", json!(false)),
        ("network.connectivity-service.enabled", json!(false)),
        ("network.dns.disablePrefetch", json!(true)),
        ("network.http.speculative-parallel-limit", json!(0)),
        ("network.prefetch-next", json!(false)),
        ("network.proxy.type", json!(0)),
        // 5: DNS over HTTPS off, by choice.
        ("network.trr.mode", json!(5)),
        (
            "security.remote_settings.crlite_filters.enabled",
            json!(false),
        ),
        (
            "security.remote_settings.intermediates.enabled",
            json!(false),
        ),
        // Remote settings from nowhere: with MOZ_DISABLE_NONLOCAL_CONNECTIONS set, this
        // exact value (what Mozilla's test harnesses use) makes Firefox skip them.
        (
            "services.settings.server",
            json!("data:,#remote-settings-dummy/v1"),
        ),
        ("toolkit.telemetry.enabled", json!(false)),
        ("toolkit.telemetry.server", json!("")),
        ("toolkit.telemetry.unified", json!(false)),
    ];
    Value::Object(prefs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// The Firefox to start: Debian's `firefox-esr`, else a `firefox`, from `PATH`.
fn firefox_binary() -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["firefox-esr", "firefox"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate.display().to_string();
            }
        }
    }
    panic!(
        "no firefox-esr or firefox on PATH (Debian package firefox-esr; `cargo xtask test` installs it)"
    )
}

/// A browser session looking at one server, closed (and its processes killed) on drop.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    /// The server's base URL.
    pub base: String,
    /// Which browser it is.
    pub kind: Kind,
    driver: Child,
    _profile: tempfile::TempDir,
    shots: Shots,
    server_output: Arc<Mutex<Vec<String>>>,
}

/// Where screenshots go: with `GANTRY_SCREENSHOTS=1`, Chromium's replace the committed
/// set under `docs/screenshots/` and Firefox's go to `screenshots-firefox/` in the target
/// dir's scratch space (to compare, not committed); otherwise a temporary directory that
/// goes away with the test.
enum Shots {
    Docs(PathBuf),
    Temp(tempfile::TempDir),
}

impl Browser {
    /// Starts the driver of `kind` and a headless browser at laptop size, looking at
    /// `server`.
    pub async fn start(server: &Server, kind: Kind) -> Browser {
        let profile = tempfile::tempdir().expect("tempdir");
        let (driver, port) = start_driver(kind, profile.path());
        let Value::Object(caps) = kind.capabilities(profile.path()) else {
            unreachable!("an object literal")
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| {
                let log =
                    std::fs::read_to_string(kind.driver_log(profile.path())).unwrap_or_default();
                panic!("no WebDriver session in {kind:?}: {e}\ndriver log:\n{log}")
            });
        let shots = match (std::env::var("GANTRY_SCREENSHOTS").as_deref(), kind) {
            (Ok("1"), Kind::Chromium) => {
                let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
                std::fs::create_dir_all(&dir).expect("mkdir docs/screenshots");
                Shots::Docs(dir)
            }
            (Ok("1"), Kind::Firefox) => {
                let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots-firefox");
                std::fs::create_dir_all(&dir).expect("mkdir screenshots-firefox");
                Shots::Docs(dir)
            }
            _ => Shots::Temp(tempfile::tempdir().expect("tempdir")),
        };
        let browser = Browser {
            client,
            base: server.url.clone(),
            kind,
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
        // A browser may refuse a size (Firefox's minimum window width): a screenshot
        // said to be at phone width must be.
        let inner = self
            .js("return [window.innerWidth, window.innerHeight]", vec![])
            .await;
        assert_eq!(
            inner,
            json!([width, height]),
            "{:?} would not make its viewport {width}x{height}",
            self.kind
        );
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
        self.poll_js(
            &format!("{needle:?} in `{css}`"),
            "const e = document.querySelector(arguments[0]); \
             return !!e && e.textContent.includes(arguments[1])",
            vec![json!(css), json!(needle)],
        )
        .await;
    }

    /// Waits until the first element matching `css` has the attribute `name`; its value.
    /// Read in the page in one step, so that it works on a page that reloads itself
    /// (where an element found first may be gone when it is asked for its attribute).
    pub async fn wait_attr(&self, css: &str, name: &str) -> String {
        let value = self
            .poll_js(
                &format!("`{css}` with {name}"),
                "const e = document.querySelector(arguments[0]); \
                 return e && e.getAttribute(arguments[1])",
                vec![json!(css), json!(name)],
            )
            .await;
        value.as_str().expect("an attribute is a string").to_owned()
    }

    /// Runs `script` until it returns something other than `null` or `false`; that.
    /// A script that fails is tried again: a live page reloads itself when its run ends,
    /// and a script that meets the reload fails (differently in each browser). The last
    /// error is in the failure message when the deadline passes.
    async fn poll_js(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        let started = Instant::now();
        loop {
            let last_error = match self.client.execute(script, args.clone()).await {
                Ok(Value::Null | Value::Bool(false)) => None,
                Ok(value) => return value,
                Err(e) => Some(e),
            };
            if started.elapsed() > DEADLINE {
                let error = last_error
                    .map(|e| format!(" (the script failed: {e})"))
                    .unwrap_or_default();
                self.fail(&format!("{what}{error}")).await;
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

    /// Fails the test: what was awaited, in which browser, the page and the server's
    /// output.
    pub async fn fail(&self, what: &str) -> ! {
        let url = self.client.current_url().await.map(|u| u.to_string());
        let source = self.client.source().await.unwrap_or_default();
        let server = self.server_output.lock().expect("lock").join("\n");
        panic!(
            "timed out waiting for {what} in {:?}\nat {url:?}\npage:\n{source}\n\nserver output:\n{server}",
            self.kind
        )
    }

    /// Ends the WebDriver session (the browser exits).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The driver leads its own process group, the browser's processes included: one
        // signal stops all of them, also when the test failed before `close`.
        let group = nix::unistd::Pid::from_raw(self.driver.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.driver.wait();
    }
}

/// Starts the driver of `kind` on a free loopback port, keeping its files in `dir`;
/// returns it and the port.
fn start_driver(kind: Kind, dir: &Path) -> (Child, u16) {
    let (program, source) = kind.driver();
    let mut last = String::new();
    // A port found free can be taken by someone else before the driver binds it: then
    // it exits, and another port is tried.
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut cmd = kind.driver_command(port, dir);
        // chromedriver writes its log itself; geckodriver's (and Firefox's) is its
        // output. Appended: a retry on another port keeps the first attempt's lines.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(kind.driver_log(dir))
            .expect("open the driver's log");
        let (out, err) = match kind {
            Kind::Chromium => (Stdio::null(), Stdio::null()),
            Kind::Firefox => (
                Stdio::from(log.try_clone().expect("dup the log")),
                Stdio::from(log),
            ),
        };
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {program} ({source}): {e}"));
        let started = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (child, port);
            }
            if let Ok(Some(status)) = child.try_wait() {
                last = format!("{program} exited with {status}");
                break;
            }
            if started.elapsed() > DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{program} did not listen on port {port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("{program} did not start: {last}")
}
