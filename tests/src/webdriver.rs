//! A minimal W3C WebDriver client over HTTP (reqwest) for the dashboard's browser tests, driving
//! the system Chromium through `/usr/bin/chromedriver`. Only what the tests use: sessions,
//! navigation, elements, clicks, typing, keys, scripts and screenshots.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

/// W3C's element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Installed before any page script runs: records uncaught errors, rejected promises and
/// `console.error` calls so a test can assert there were none.
const ERROR_HOOK: &str = "window.__capstanErrors=[];\
window.addEventListener('error',function(e){window.__capstanErrors.push(String(e.message||e));});\
window.addEventListener('unhandledrejection',function(e){window.__capstanErrors.push('rejection: '+String(e.reason));});\
(function(){var o=console.error;console.error=function(){window.__capstanErrors.push(Array.prototype.join.call(arguments,' '));return o.apply(console,arguments);};})();";

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start(chromedriver: &str, chromium: &str) -> Browser {
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {chromedriver}: {e}"));
        let http = crate::dashboard::http();
        let base = format!("http://127.0.0.1:{port}");
        // Wait (bounded) for the driver to answer.
        let mut up = false;
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && r.status().is_success()
            {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(up, "chromedriver did not start");
        let profile = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let caps = json!({"capabilities":{"alwaysMatch":{
            "browserName":"chrome",
            "goog:chromeOptions":{"binary":chromium,"args":[
                "--headless=new","--no-sandbox","--disable-gpu","--disable-dev-shm-usage",
                "--window-size=1280,900","--hide-scrollbars","--lang=en-US",
                format!("--user-data-dir={}", profile.path().display())]}
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap_or_else(|e| panic!("new session: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("new session body: {e}"));
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_string();
        let b = Browser {
            driver,
            base,
            session,
            http,
            _profile: profile,
        };
        b.cmd(
            "POST",
            "goog/cdp/execute",
            json!({"cmd":"Page.addScriptToEvaluateOnNewDocument","params":{"source":ERROR_HOOK}}),
        )
        .await;
        b
    }

    async fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}/{path}", self.base, self.session);
        let req = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url).json(&body),
        };
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status();
        let v: Value = resp
            .json()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} body: {e}"));
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "url", json!({ "url": url })).await;
    }

    pub async fn url(&self) -> String {
        self.cmd("GET", "url", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The current URL once it contains `part` (polled for up to 10 s; a form submission may
    /// still be navigating when the click returns).
    pub async fn wait_for_url(&self, part: &str) -> String {
        let mut url = self.url().await;
        for _ in 0..200 {
            if url.contains(part) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            url = self.url().await;
        }
        url
    }

    pub async fn title(&self) -> String {
        self.cmd("GET", "title", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The element matching `css` (the test fails when there is none).
    pub async fn find(&self, css: &str) -> String {
        self.find_by("css selector", css).await
    }

    pub async fn find_by(&self, using: &str, value: &str) -> String {
        let v = self
            .cmd("POST", "element", json!({ "using": using, "value": value }))
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {value}: {v}"))
            .to_string()
    }

    pub async fn click(&self, element: &str) {
        self.cmd("POST", &format!("element/{element}/click"), json!({}))
            .await;
    }

    pub async fn type_into(&self, element: &str, text: &str) {
        self.cmd(
            "POST",
            &format!("element/{element}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Presses one key (e.g. `\u{E004}` = Tab) on the focused element.
    pub async fn press(&self, key: &str) {
        self.cmd(
            "POST",
            "actions",
            json!({"actions":[{"type":"key","id":"kbd","actions":[
                {"type":"keyDown","value":key},{"type":"keyUp","value":key}]}]}),
        )
        .await;
    }

    pub async fn script(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// Errors the page reported since it loaded.
    pub async fn page_errors(&self) -> Vec<String> {
        self.script("return window.__capstanErrors || ['error hook missing'];")
            .await
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn resize(&self, width: u64, height: u64) {
        self.cmd(
            "POST",
            "window/rect",
            json!({"width":width,"height":height}),
        )
        .await;
    }

    /// A PNG of the whole page at 1280 pixels wide.
    pub async fn screenshot(&self, path: &std::path::Path) {
        self.screenshot_at(path, 1280).await;
    }

    /// A PNG of the whole page (the window is grown to the document's height first).
    pub async fn screenshot_at(&self, path: &std::path::Path, width: u64) {
        // The window's height includes the browser's own chrome; add it so the page fits.
        let h = self
            .script(
                "return Math.min(document.documentElement.scrollHeight + window.outerHeight - window.innerHeight, 8000);",
            )
            .await
            .as_u64()
            .unwrap_or(900)
            .max(600);
        self.resize(width, h).await;
        let b64 = self.cmd("GET", "screenshot", Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("screenshot: {e}"));
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        self.resize(width, 900).await;
    }

    pub async fn quit(self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let r = self.http.delete(url).send().await;
        assert!(
            r.is_ok_and(|r| r.status().is_success()),
            "closing the session"
        );
    }
}
