//! End to end, in a real browser: headless Chromium, driven through
//! chromedriver with fantoccini, shops on `examples/shop.rs` while the store
//! node that leads its replica set is killed.
//!
//! The test runs the pieces of the example as processes of the example's
//! binary (`cargo test` builds examples; `cargo test --test browser` alone
//! does not, so build it first with `cargo build --example shop`): three
//! store nodes (ids 1, 2, 3, one data directory each), two application
//! servers, all on free loopback ports. It logs in on application server A,
//! fills the cart, SIGKILLs the node that leads, changes the cart on
//! application server B while the other two elect a new leader, and checks
//! on B and on A that no acknowledged change was lost: the browser sends
//! the same cookie to both (cookies are scoped by host, not by port).
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium
//! chromium-driver`). Without them the test fails under `CI=true`; on a
//! developer machine it says so loudly and passes.
//! On failure a screenshot is saved as `target/browser-failure-*.png`. Set
//! `SHOP_SCREENSHOTS=<dir>` to also save screenshots of the pages it
//! visits on success.
#![allow(clippy::unwrap_used)]

mod common;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, ensure, Context};
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use session_runtime::net::message::Role;
use session_runtime::net::Stats;

/// Each wait in the script gives up after this long.
const WAIT: Duration = Duration::from_secs(10);

/// A child process, SIGKILLed (and reaped) on drop.
struct Proc {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, program: &Path, args: &[&str], dir: &Path) -> Proc {
        let log = dir.join(format!("{}.log", name.replace(' ', "-")));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(program)
            .args(args)
            .env(
                "SHOP_CLUSTER_SECRET",
                std::str::from_utf8(common::SECRET).unwrap(),
            )
            .env("RUST_LOG", "info")
            // Held open by this process: the shop's pieces (started with
            // --exit-with-parent) exit when the test does, however it ends.
            .stdin(Stdio::piped())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({}): {e}", program.display()));
        Proc {
            name,
            child: Some(child),
            log,
        }
    }

    /// SIGKILL: no shutdown, no goodbye.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The last lines of its output.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("shop-browser-test-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An executable on `PATH` (or at one of the usual Debian places).
fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]);
    for dir in dirs {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// `<target>/debug/examples/shop`, next to this test's `<target>/debug/deps/`.
fn shop_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    profile_dir
        .join("examples")
        .join(format!("shop{}", std::env::consts::EXE_SUFFIX))
}

/// Where failure screenshots go: `<target>/`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .nth(3)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
}

fn accepts(addr: &str) -> bool {
    std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(200)).is_ok()
}

/// Polls `f` every 100 ms until it yields a value, for at most `limit`.
async fn poll<T, Fut>(what: &str, limit: Duration, mut f: impl FnMut() -> Fut) -> anyhow::Result<T>
where
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        let last = match f().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => None,
            Err(e) => Some(e),
        };
        if start.elapsed() > limit {
            let last = last
                .map(|e| format!(" (last error: {e:#})"))
                .unwrap_or_default();
            bail!("timed out after {limit:?} waiting for {what}{last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the page's path and query are `path`.
async fn wait_path(c: &Client, path: &str) -> anyhow::Result<()> {
    poll(&format!("the page {path}"), WAIT, || async move {
        let url = c.current_url().await?;
        let here = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        Ok((here == path).then_some(()))
    })
    .await
}

/// The cart as the page shows it: (sku, quantity) per line, in order.
async fn cart_lines(c: &Client) -> anyhow::Result<Vec<(String, u32)>> {
    let mut lines = Vec::new();
    for row in c.find_all(Locator::Css("tr.line")).await? {
        let sku = row
            .attr("data-sku")
            .await?
            .context("a line without a sku")?;
        let qty = row
            .attr("data-qty")
            .await?
            .context("a line without a quantity")?;
        lines.push((sku, qty.parse()?));
    }
    Ok(lines)
}

async fn text_of(c: &Client, css: &str) -> anyhow::Result<String> {
    let el = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .with_context(|| format!("finding {css}"))?;
    Ok(el.text().await?)
}

async fn click(c: &Client, css: &str) -> anyhow::Result<()> {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .with_context(|| format!("finding {css}"))?
        .click()
        .await
        .with_context(|| format!("clicking {css}"))?;
    Ok(())
}

/// Saves a screenshot of the current page, if `SHOP_SCREENSHOTS` is set.
async fn keep_screenshot(c: &Client, name: &str) -> anyhow::Result<()> {
    if let Some(dir) = std::env::var_os("SHOP_SCREENSHOTS") {
        let path = Path::new(&dir).join(format!("{name}.png"));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(&path, c.screenshot().await?)?;
        eprintln!("screenshot: {}", path.display());
    }
    Ok(())
}

/// The store nodes' names, by index (node id = index + 1).
const NODE_NAMES: [&str; 3] = ["node 1", "node 2", "node 3"];

struct Shop {
    nodes: Vec<Proc>,
    app_a: Proc,
    app_b: Proc,
    node_addrs: Vec<String>,
    app_a_addr: String,
    app_b_addr: String,
}

impl Shop {
    fn procs(&mut self) -> Vec<&mut Proc> {
        let mut procs: Vec<&mut Proc> = self.nodes.iter_mut().collect();
        procs.extend([&mut self.app_a, &mut self.app_b]);
        procs
    }
}

/// The index and counters of the node that leads, once every node but
/// those in `down` answers and follows it in the same term.
async fn settled_leader(
    addrs: &[String],
    down: &[usize],
) -> anyhow::Result<Option<(usize, Stats)>> {
    let mut stats = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        if !down.contains(&i) {
            match common::node_stats(addr).await {
                Some(s) => stats.push((i, s)),
                None => bail!("{} on {addr} does not answer", NODE_NAMES[i]),
            }
        }
    }
    let Some((i, leader)) = stats.iter().find(|(_, s)| s.role == Role::Leader) else {
        return Ok(None);
    };
    let settled = stats
        .iter()
        .all(|(_, s)| s.leader == Some(leader.id) && s.term == leader.term);
    Ok(settled.then(|| (*i, leader.clone())))
}

/// Starts the three nodes and the two application servers, waits for a
/// leader that the others follow and until the servers serve.
async fn start_shop(bin: &Path, dir: &Path) -> anyhow::Result<Shop> {
    let node_addrs: Vec<String> = (0..3).map(|_| common::free_addr()).collect();
    let (aa, ab) = (common::free_addr(), common::free_addr());
    let nodes = (0..3)
        .map(|i| {
            let data = dir.join(format!("node-{}", i + 1));
            let mut args = vec![
                "node".to_string(),
                "--id".into(),
                (i + 1).to_string(),
                "--listen".into(),
                node_addrs[i].clone(),
                "--data-dir".into(),
                data.display().to_string(),
                "--exit-with-parent".into(),
            ];
            for (j, peer) in node_addrs.iter().enumerate().filter(|(j, _)| *j != i) {
                args.push("--peer".into());
                args.push(format!("{}={peer}", j + 1));
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Proc::spawn(NODE_NAMES[i], bin, &args, dir)
        })
        .collect();
    let app = |name, listen: &str| {
        let mut args = vec!["app", "--listen", listen, "--exit-with-parent"];
        for addr in &node_addrs {
            args.extend(["--node", addr]);
        }
        Proc::spawn(name, bin, &args, dir)
    };
    // Started at once: an application server waits for a leader itself.
    let mut shop = Shop {
        app_a: app("app A", &aa),
        app_b: app("app B", &ab),
        nodes,
        node_addrs: node_addrs.clone(),
        app_a_addr: aa.clone(),
        app_b_addr: ab.clone(),
    };
    let ready = poll(
        "a leader followed by both other nodes, and the application servers",
        Duration::from_secs(20),
        || {
            let stopped = shop
                .procs()
                .into_iter()
                .find_map(|p| (!p.running()).then_some(p.name));
            let (node_addrs, aa, ab) = (node_addrs.clone(), aa.clone(), ab.clone());
            async move {
                if let Some(name) = stopped {
                    bail!("{name} exited");
                }
                let led = settled_leader(&node_addrs, &[]).await?.is_some();
                Ok((led && accepts(&aa) && accepts(&ab)).then_some(()))
            }
        },
    )
    .await;
    if let Err(e) = ready {
        return Err(e.context(logs(&mut shop)));
    }
    Ok(shop)
}

fn logs(shop: &mut Shop) -> String {
    shop.procs()
        .iter()
        .map(|p| format!("--- {} log:\n{}", p.name, p.log_tail()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks what the stats page says about the set: `leader` leads, in a
/// term not before `term`, with three members; it shipped entries. Returns
/// the page's term.
async fn check_stats(c: &Client, leader: &Stats, term: u64) -> anyhow::Result<u64> {
    let addr = text_of(c, "#leader").await?;
    ensure!(
        addr == leader.node,
        "stats page names {addr} as leader, not {}",
        leader.node
    );
    let id = text_of(c, "#leader-id").await?;
    ensure!(
        id == leader.id.to_string(),
        "leader id on the stats page: {id}"
    );
    let page_term: u64 = text_of(c, "#term").await?.parse()?;
    ensure!(
        page_term >= term,
        "term {page_term} on the stats page, before {term}"
    );
    let mut members = Vec::new();
    for m in c.find_all(Locator::Css("#members .member")).await? {
        let id = m.attr("data-id").await?.context("a member without an id")?;
        let role = m
            .attr("data-role")
            .await?
            .context("a member without a role")?;
        members.push((id, role));
    }
    let expected: Vec<(String, String)> = (1..=3u64)
        .map(|id| {
            let role = if id == leader.id {
                "leader"
            } else {
                "follower"
            };
            (id.to_string(), role.to_string())
        })
        .collect();
    ensure!(
        members == expected,
        "members on the stats page: {members:?}"
    );
    let shipped: u64 = text_of(c, "#entries-shipped").await?.parse()?;
    ensure!(shipped > 0, "the leader shipped no entries");
    Ok(page_term)
}

/// What the browser does.
async fn script(c: &Client, shop: &mut Shop) -> anyhow::Result<()> {
    let (a, b) = (
        format!("http://{}", shop.app_a_addr),
        format!("http://{}", shop.app_b_addr),
    );

    // --- log in on A, with a name that must come back escaped
    c.goto(&format!("{a}/")).await?;
    wait_path(c, "/login").await?;
    // 37 characters: the form takes up to 40.
    let name = "Ada <script>document.title=1</script>";
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Id("name"))
        .await?
        .send_keys(name)
        .await?;
    click(c, "#login").await?;
    wait_path(c, "/").await?;
    let greeting = text_of(c, "h1").await?;
    ensure!(
        greeting == format!("Hello, {name}"),
        "greeting: {greeting:?}"
    );
    ensure!(
        c.title().await?.contains("Teahouse"),
        "the name ran as a script"
    );

    // --- three products, then a quantity
    for sku in ["sencha", "mug", "grinder"] {
        click(c, &format!("#add-{sku}")).await?;
        wait_path(c, &format!("/?added={sku}")).await?;
    }
    keep_screenshot(c, "products-a").await?;
    c.goto(&format!("{a}/cart")).await?;
    let qty = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("qty-mug"))
        .await?;
    qty.clear().await?;
    qty.send_keys("3").await?;
    click(c, "#update-mug").await?;
    let expected = vec![
        ("sencha".to_string(), 1),
        ("mug".to_string(), 3),
        ("grinder".to_string(), 1),
    ];
    poll("the updated quantity", WAIT, || async {
        Ok((cart_lines(c).await? == expected).then_some(()))
    })
    .await?;
    ensure!(
        text_of(c, "#served-by").await? == shop.app_a_addr,
        "footer names app A"
    );
    ensure!(
        text_of(c, "#total").await? == "€117.50",
        "total: 8.50 + 3 × 15.00 + 64.00"
    );
    keep_screenshot(c, "cart-a").await?;

    // --- preferences: dark theme, prices in dollars
    c.goto(&format!("{a}/prefs")).await?;
    click(c, "input[name=theme][value=dark]").await?;
    c.find(Locator::Id("currency"))
        .await?
        .select_by_value("usd")
        .await?;
    click(c, "input[name=newsletter]").await?;
    click(c, "#save-prefs").await?;
    wait_path(c, "/prefs?saved=1").await?;
    keep_screenshot(c, "prefs-a").await?;

    // --- the stats page on A names the leader
    let addrs = shop.node_addrs.clone();
    let (leader, before) = settled_leader(&addrs, &[])
        .await?
        .context("no settled leader before the kill")?;
    c.goto(&format!("{a}/stats")).await?;
    let term = check_stats(c, &before, before.term).await?;
    keep_screenshot(c, "stats-a").await?;

    // --- SIGKILL the node that leads; the other two elect a new leader
    shop.nodes[leader].kill();

    // --- a cart change on application server B, the same cookie, during
    // the election: acknowledged (the page redirects) once the new leader
    // and its follower hold it
    c.goto(&format!("{b}/cart")).await?;
    wait_path(c, "/cart").await?;
    let qty = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("qty-sencha"))
        .await?;
    qty.clear().await?;
    qty.send_keys("2").await?;
    click(c, "#update-sencha").await?;
    let expected = vec![
        ("sencha".to_string(), 2),
        ("mug".to_string(), 3),
        ("grinder".to_string(), 1),
    ];
    poll("the quantity updated on B", WAIT, || async {
        Ok((cart_lines(c).await? == expected).then_some(()))
    })
    .await?;
    let (new_leader, after) = poll("a new leader", Duration::from_secs(15), || {
        let addrs = addrs.clone();
        async move { settled_leader(&addrs, &[leader]).await }
    })
    .await?;
    ensure!(
        new_leader != leader && after.term > before.term,
        "{} still leads",
        NODE_NAMES[leader]
    );

    // --- every acknowledged change is there, on B and on A
    c.goto(&format!("{b}/cart")).await?;
    wait_path(c, "/cart").await?;
    let on_b = cart_lines(c).await?;
    ensure!(
        on_b == expected,
        "cart on app B after the failover: {on_b:?}, expected {expected:?}"
    );
    // The preferences came along: dark, and €126.00 at 1.08 dollars.
    let theme = c.find(Locator::Css("body")).await?.attr("class").await?;
    ensure!(theme.as_deref() == Some("dark"), "theme on B: {theme:?}");
    let total = text_of(c, "#total").await?;
    ensure!(total == "$136.08", "total on B: {total}");
    ensure!(
        text_of(c, "#served-by").await? == shop.app_b_addr,
        "footer names app B"
    );
    keep_screenshot(c, "cart-b").await?;
    c.goto(&format!("{a}/cart")).await?;
    wait_path(c, "/cart").await?;
    let on_a = cart_lines(c).await?;
    ensure!(
        on_a == expected,
        "cart on app A after the failover: {on_a:?}, expected {expected:?}"
    );

    c.goto(&format!("{b}/stats")).await?;
    let new_term = check_stats(c, &after, after.term).await?;
    ensure!(
        new_term > term,
        "term {new_term} after the failover, {term} before"
    );
    keep_screenshot(c, "stats-b").await?;
    Ok(())
}

async fn connect_browser(driver: &str, chromium: &Path, profile: &Path) -> anyhow::Result<Client> {
    let options = serde_json::json!({
        "binary": chromium.display().to_string(),
        "args": [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
            format!("--user-data-dir={}", profile.display()),
        ],
    });
    let mut caps = Capabilities::new();
    caps.insert("browserName".into(), "chrome".into());
    caps.insert("goog:chromeOptions".into(), options);
    // chromedriver listens on loopback over plain HTTP.
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver)
        .await
        .context("starting a Chromium session through chromedriver")?;
    Ok(client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cart_survives_its_leader_in_a_real_browser() {
    let (Some(chromium), Some(chromedriver)) = (
        find_program(&["chromium", "chromium-browser"]),
        find_program(&["chromedriver"]),
    ) else {
        // CI must run the test, not skip it.
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(
            !ci,
            "CI is set but chromium and/or chromedriver are not found: \
             install them (Debian: apt-get install chromium chromium-driver)"
        );
        eprintln!();
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        eprintln!("!!! SKIPPED tests/browser.rs: chromium and/or chromedriver not found.  !!!");
        eprintln!("!!! Install them (Debian: apt-get install chromium chromium-driver).   !!!");
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        eprintln!();
        return;
    };
    let bin = shop_binary();
    assert!(
        bin.is_file(),
        "{} is missing: `cargo test` builds examples, `cargo test --test browser` does not; \
         run `cargo build --example shop` first",
        bin.display()
    );
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop.rs");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&source) > modified(&bin) {
        eprintln!(
            "WARNING: {} is older than examples/shop.rs; run `cargo build --example shop`",
            bin.display()
        );
    }

    let started = Instant::now();
    let dir = TempDir::new();
    let mut shop = start_shop(&bin, &dir.0)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));

    let driver_addr = common::free_addr();
    let port = driver_addr.rsplit(':').next().unwrap().to_string();
    let mut driver = Proc::spawn(
        "chromedriver",
        &chromedriver,
        &[&format!("--port={port}")],
        &dir.0,
    );
    poll("chromedriver", Duration::from_secs(10), || {
        let up = accepts(&driver_addr);
        async move { Ok(up.then_some(())) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", driver.log_tail()));
    let profile = dir.0.join("chromium-profile");
    let browser = tokio::time::timeout(
        Duration::from_secs(30),
        connect_browser(&format!("http://{driver_addr}"), &chromium, &profile),
    )
    .await
    .map_err(|_| anyhow!("no browser session within 30 s"))
    .and_then(|r| r)
    .unwrap_or_else(|e| panic!("{e:#}\n--- chromedriver log:\n{}", driver.log_tail()));

    let outcome = tokio::time::timeout(Duration::from_secs(60), script(&browser, &mut shop))
        .await
        .unwrap_or_else(|_| Err(anyhow!("the script did not finish within 60 s")));
    if let Err(e) = &outcome {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let path = target_dir().join(format!("browser-failure-{millis}.png"));
        match tokio::time::timeout(Duration::from_secs(10), browser.screenshot()).await {
            Ok(Ok(png)) => match std::fs::write(&path, png) {
                Ok(()) => eprintln!("screenshot of the failure: {}", path.display()),
                Err(w) => eprintln!("could not save the screenshot to {}: {w}", path.display()),
            },
            Ok(Err(s)) => eprintln!("no screenshot: {s}"),
            Err(_) => eprintln!("no screenshot: timed out"),
        }
        let url = browser.current_url().await.map(|u| u.to_string());
        eprintln!("failed at {url:?}: {e:#}");
    }
    // Ends the browser; chromedriver and the shop are killed on drop.
    let _ = tokio::time::timeout(Duration::from_secs(10), browser.close()).await;
    driver.kill();
    if let Err(e) = outcome {
        panic!("{e:#}\n{}", logs(&mut shop));
    }
    eprintln!("browser test took {:.1?}", started.elapsed());
}
