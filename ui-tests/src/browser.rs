//! Headless Chromium over WebDriver: [`Browser::start`] runs Debian's `chromedriver` on a free
//! loopback port (in a process group of its own) and opens a session of `/usr/bin/chromium`
//! with a fresh profile; [`Browser::close`] ends both, and dropping a browser kills what is
//! left. Helpers wait for the page's "rendered" mark, run scripts and read the console.

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// Flags every Chromium of the tests starts with.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1440,900",
    "--force-device-scale-factor=1",
];

/// How long a page may take to show what a test waits for (the machine may be busy).
pub const WAIT: Duration = Duration::from_secs(90);

/// A Chromium session and the chromedriver serving it.
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    driver: Child,
    profile: tempfile::TempDir,
}

fn exe(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `POST /session/{id}/se/log {"type": "browser"}`: the console messages since the last call
/// (chromedriver's logging endpoint, enabled by `goog:loggingPrefs`).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

impl Browser {
    /// Starts chromedriver and Chromium (`$CHROMEDRIVER`, `$CHROMIUM` override the paths).
    pub async fn start() -> Result<Browser> {
        let chromium = exe("CHROMIUM", "/usr/bin/chromium");
        let driver_bin = exe("CHROMEDRIVER", "/usr/bin/chromedriver");
        for (what, path) in [("chromium", &chromium), ("chromedriver", &driver_bin)] {
            if !path.exists() {
                bail!(
                    "{what} not found at {} (install Debian's packages: \
                     apt-get install chromium chromium-driver; or set {})",
                    path.display(),
                    if what == "chromium" {
                        "CHROMIUM"
                    } else {
                        "CHROMEDRIVER"
                    }
                );
            }
        }
        let profile = tempfile::Builder::new()
            .prefix("weave-ui-chromium-")
            .tempdir()?;
        let port = free_port()?;
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            // Times on the pages read the same on every machine.
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", driver_bin.display()))?;
        let mut browser_args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        browser_args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": browser_args},
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let caps = caps.as_object().cloned().unwrap_or_default();
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                // chromedriver takes a moment to listen.
                Err(_) if started.elapsed() < Duration::from_secs(60) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    kill_group(driver.id());
                    bail!("no WebDriver session from chromedriver on {url}: {e}");
                }
            }
        };
        let browser = Browser {
            client,
            driver,
            profile,
        };
        // A viewport of exactly 1440 x 900 (the window's frame takes some of its size).
        if let Ok(Value::Number(inner)) = browser.js("return window.innerHeight").await {
            let inner = inner.as_u64().unwrap_or(900) as u32;
            if inner != 900 {
                let _ = browser
                    .client
                    .set_window_size(1440, 900 + 900 - inner.min(900))
                    .await;
            }
        }
        // Start with an empty console.
        let _ = browser.console().await;
        Ok(browser)
    }

    /// Opens `url` and waits for the page to mark `what` rendered.
    pub async fn open(&self, url: &str, what: &str) -> Result<()> {
        self.client.goto(url).await?;
        self.wait_ready(what).await
    }

    /// Waits until the page has marked `what` (`traces`, `trace`, `compare`...) rendered
    /// after the last call of [`Browser::reset_ready`] (or the last page load).
    pub async fn wait_ready(&self, what: &str) -> Result<()> {
        self.wait_js(
            &format!(
                "const r = document.documentElement.dataset.ready || ''; return r.startsWith({}) && r !== window.__seenReady",
                json!(format!("{what}:"))
            ),
            &format!("the {what} page to render"),
        )
        .await?;
        self.js("window.__seenReady = document.documentElement.dataset.ready; return null")
            .await?;
        Ok(())
    }

    /// Forgets the last "rendered" mark, so that [`Browser::wait_ready`] waits for a new one.
    pub async fn reset_ready(&self) -> Result<()> {
        self.js("window.__seenReady = document.documentElement.dataset.ready || ''; return null")
            .await?;
        Ok(())
    }

    /// Runs `body` (a function body with `return`) in the page.
    pub async fn js(&self, body: &str) -> Result<Value> {
        Ok(self.client.execute(body, vec![]).await?)
    }

    /// Runs `body` with arguments (`arguments[0]`...).
    pub async fn js_with(&self, body: &str, args: Vec<Value>) -> Result<Value> {
        Ok(self.client.execute(body, args).await?)
    }

    /// Polls `body` (returning a boolean) until true; fails naming `what` after [`WAIT`].
    pub async fn wait_js(&self, body: &str, what: &str) -> Result<()> {
        let started = Instant::now();
        loop {
            match self.client.execute(body, vec![]).await {
                Ok(Value::Bool(true)) => return Ok(()),
                Ok(_) => {}
                Err(e) if started.elapsed() > WAIT => return Err(e.into()),
                Err(_) => {}
            }
            if started.elapsed() > WAIT {
                let url = self.client.current_url().await.map(|u| u.to_string());
                let text = self
                    .js("return document.body ? document.body.innerText.slice(0, 1500) : ''")
                    .await
                    .unwrap_or_default();
                bail!("timed out waiting for {what} at {url:?}; the page shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The text of every element matching `css`.
    pub async fn texts(&self, css: &str) -> Result<Vec<String>> {
        let v = self
            .js_with(
                "return [...document.querySelectorAll(arguments[0])].map(e => e.innerText.trim())",
                vec![json!(css)],
            )
            .await?;
        Ok(serde_json::from_value(v)?)
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) -> Result<()> {
        self.client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("no element {css}"))?
            .click()
            .await
            .with_context(|| format!("clicking {css}"))?;
        Ok(())
    }

    /// The console messages since the last call: `(level, message)`.
    pub async fn console(&self) -> Result<Vec<(String, String)>> {
        let v = self.client.issue_cmd(BrowserLog).await?;
        let mut out = Vec::new();
        for e in v.as_array().into_iter().flatten() {
            out.push((
                e["level"].as_str().unwrap_or("").to_string(),
                e["message"].as_str().unwrap_or("").to_string(),
            ));
        }
        Ok(out)
    }

    /// Console errors (level `SEVERE`) since the last call, and errors the page caught itself.
    pub async fn console_errors(&self) -> Result<Vec<String>> {
        let mut errs: Vec<String> = self
            .console()
            .await?
            .into_iter()
            .filter(|(level, _)| level == "SEVERE")
            .map(|(_, m)| m)
            .collect();
        if let Ok(Value::Array(page)) = self.js("return window.__weaveErrors || []").await {
            errs.extend(page.into_iter().map(|e| format!("page: {e}")));
        }
        Ok(errs)
    }

    /// Fails when the console has errors.
    pub async fn assert_no_console_errors(&self) -> Result<()> {
        let errs = self.console_errors().await?;
        if !errs.is_empty() {
            bail!("console errors: {errs:#?}");
        }
        Ok(())
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Result<Vec<u8>> {
        Ok(self.client.screenshot().await?)
    }

    /// Ends the session (Chromium exits) and stops chromedriver.
    pub async fn close(mut self) -> Result<()> {
        let client = self.client.clone();
        let closed = client.close().await;
        self.stop_driver();
        closed?;
        Ok(())
    }

    fn stop_driver(&mut self) {
        kill_group(self.driver.id());
        let _ = self.driver.wait();
        // Anything of this session that left the group: found by its unique profile path.
        kill_by_arg(&self.profile.path().display().to_string());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if matches!(self.driver.try_wait(), Ok(None)) {
            self.stop_driver();
        }
    }
}

/// SIGKILL to the process group led by `pid`.
fn kill_group(pid: u32) {
    // SAFETY: killpg has no memory-safety preconditions; a stale pgid only makes it fail.
    unsafe {
        libc::killpg(pid as libc::pid_t, libc::SIGKILL);
    }
}

/// SIGKILL to this user's processes whose command line contains `needle` (a unique temp
/// path), other than this one.
fn kill_by_arg(needle: &str) {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(needle) {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
            }
        }
    }
}
