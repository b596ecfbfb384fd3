//! One chromedriver (and through it one headless Chromium) per test, in a process group of its
//! own that is killed on drop, with a fresh profile directory.

use fantoccini::{Client, ClientBuilder, Locator};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a page may take to show the element a step waits for.
pub const STEP: Duration = Duration::from_secs(15);

pub struct Browser {
    pub client: Client,
    _driver: Driver,
}

/// The chromedriver process; killed (with its process group) on drop.
struct Driver {
    child: Child,
    log: std::path::PathBuf,
    // Removed after the processes using it are gone (fields drop after `Drop::drop`).
    profile: tempfile::TempDir,
}

/// Options for one browser.
#[derive(Default)]
pub struct Options {
    /// Disable JavaScript for every page.
    pub no_javascript: bool,
}

fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: the browser tests need Debian's `{package}` package \
         (scripts/test installs it; by hand: apt-get install chromium chromium-driver); they fail \
         rather than skip"
    );
}

impl Browser {
    pub async fn launch(opts: Options) -> Browser {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        require(CHROMIUM, "chromium");
        require(CHROMEDRIVER, "chromium-driver");

        let profile = tempfile::tempdir().unwrap();
        let log = profile.path().join("chromedriver.log");
        let port = crate::support::free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that Drop can end chromedriver and the browser it started.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {CHROMEDRIVER}: {e}"));
        // From here on a panic drops `driver`, which kills it.
        let mut driver = Driver { child, log, profile };
        let client = driver.connect(port, opts).await;
        Browser { client, _driver: driver }
    }
}

impl Driver {
    async fn connect(&mut self, port: u16, opts: Options) -> Client {
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("chromedriver exited at start ({status}); log:\n{}", self.log_text());
            }
            if let Ok(r) = http.get(format!("{url}/status")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not answer on port {port}; log:\n{}", self.log_text());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--disable-quic".into(),
            format!("--user-data-dir={}", self.profile.path().join("profile").display()),
        ];
        let mut chrome = serde_json::json!({ "binary": CHROMIUM });
        if opts.no_javascript {
            args.push("--blink-settings=scriptEnabled=false".into());
            chrome["prefs"] = serde_json::json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        chrome["args"] = serde_json::json!(args);
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert("goog:chromeOptions".into(), chrome);
        let mut builder = ClientBuilder::rustls().unwrap();
        builder.capabilities(caps);
        match builder.connect(&url).await {
            Ok(c) => c,
            Err(e) => panic!("could not start a Chromium session: {e}; chromedriver log:\n{}", self.log_text()),
        }
    }

    fn log_text(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Browser {
    /// End the WebDriver session (closes Chromium); Drop then ends chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// Wait for an element by id (the page the previous step led to has loaded).
    pub async fn wait_id(&self, id: &str) -> fantoccini::elements::Element {
        match self.client.wait().at_most(STEP).for_element(Locator::Id(id)).await {
            Ok(e) => e,
            Err(e) => {
                let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
                let src = self.client.source().await.unwrap_or_default();
                panic!("no element #{id} at {url}: {e}\npage:\n{src}")
            }
        }
    }

    /// Click a button that submits a form or follows a link, and wait until the page it was on
    /// has been replaced (so that the next step cannot see the old page).
    pub async fn click(&self, id: &str) {
        let old = self.client.find(Locator::Css("html")).await.unwrap();
        self.wait_id(id).await.click().await.unwrap_or_else(|e| panic!("click #{id}: {e}"));
        let deadline = Instant::now() + STEP;
        while old.attr("lang").await.is_ok() {
            assert!(Instant::now() < deadline, "clicking #{id} did not leave the page");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn type_into(&self, id: &str, text: &str) {
        let e = self.wait_id(id).await;
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap_or_else(|e| panic!("type into #{id}: {e}"));
    }

    pub async fn url(&self) -> url::Url {
        self.client.current_url().await.unwrap()
    }

    pub async fn text(&self, css: &str) -> String {
        self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}")).text().await.unwrap()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group (its id is chromedriver's pid): chromedriver and the Chromium
        // processes it started.
        let pgid = self.child.id();
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
