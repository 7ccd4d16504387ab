//! A small server-rendered shop whose sessions live in a replicated store:
//! three store nodes (one replica set: a leader and two followers) and two
//! application servers that share them, all on loopback.
//!
//! ```text
//! cargo run --example shop
//! ```
//!
//! starts everything and prints the URLs; Ctrl-C stops everything. Log in on
//! one application server, fill the cart, and open the same page on the
//! other: the browser sends the same cookie to both (cookies are scoped by
//! host, not by port), and both load the session from the store. `/stats`
//! shows which node leads and what replication shipped.
//!
//! The binary has three roles, chosen by subcommand:
//!
//! - `shop` (no subcommand): the launcher. Generates a random cluster secret,
//!   makes a data directory per store node (under a fresh temporary folder,
//!   removed on exit, unless `--data-dir` names one), starts three
//!   `shop node` and two `shop app` processes (itself, re-run), and stops
//!   them all on Ctrl-C, on SIGTERM, or when any of them exits;
//! - `shop node --id N --listen A --data-dir D --peer ID=ADDR ...`: a store
//!   node (the `--peer`s are the other members of the set);
//! - `shop app --listen P --node A --node B --node C`: an application
//!   server.
//!
//! Nodes and application servers read the cluster secret from the
//! `SHOP_CLUSTER_SECRET` environment variable, so that one store node can be
//! run (and killed) on its own, as `tests/browser.rs` does.

use std::fmt::Write as _;
use std::io::Read as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};
use session_runtime::net::auth;
use session_runtime::net::message::Role;
use session_runtime::node::{Node, NodeConfig};
use session_runtime::web::{CookieConfig, SessionLayer, TrackedSession};
use session_runtime::{Client, ClientConfig, Session, Tracked};

/// The environment variable that carries the cluster secret to the nodes
/// and application servers.
const SECRET_ENV: &str = "SHOP_CLUSTER_SECRET";

// ---------------------------------------------------------------------------
// The session
// ---------------------------------------------------------------------------

/// One line of the cart. A nested session: changing a quantity ships the
/// new quantity of that line, not the line nor the cart.
#[derive(Session, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CartLine {
    #[immutable]
    sku: String,
    #[mutable]
    qty: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
enum Theme {
    #[default]
    Light,
    Dark,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
enum Currency {
    #[default]
    Eur,
    Usd,
    Gbp,
}

/// Display preferences, kept in the session.
#[derive(Session, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Prefs {
    #[mutable]
    theme: Theme,
    #[mutable]
    currency: Currency,
    #[mutable]
    newsletter: bool,
}

/// A logged-in shopper's session.
#[derive(Session, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Shop {
    /// Who logged in (fixed for the session's life: a different user logs
    /// in to a new session).
    #[immutable]
    user: String,
    /// When, in seconds since the Unix epoch.
    #[immutable]
    created_at: u64,
    #[mutable]
    cart: Vec<CartLine>,
    #[mutable]
    prefs: Prefs,
    /// Visits to the catalogue page.
    #[mutable]
    visits: u32,
}

impl Shop {
    fn new(user: String) -> Self {
        let created_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            user,
            created_at,
            cart: Vec::new(),
            prefs: Prefs::default(),
            visits: 0,
        }
    }

    fn items(&self) -> u32 {
        self.cart.iter().map(|l| l.qty).sum()
    }
}

// ---------------------------------------------------------------------------
// The catalogue
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct Product {
    sku: &'static str,
    name: &'static str,
    blurb: &'static str,
    /// Price in euro cents.
    price: u64,
}

const CATALOGUE: [Product; 8] = [
    Product {
        sku: "sencha",
        name: "Sencha green tea",
        blurb: "100 g loose leaf, first flush",
        price: 850,
    },
    Product {
        sku: "espresso",
        name: "Espresso beans",
        blurb: "250 g, dark roast",
        price: 1290,
    },
    Product {
        sku: "mug",
        name: "Stoneware mug",
        blurb: "350 ml, hand glazed",
        price: 1500,
    },
    Product {
        sku: "teapot",
        name: "Cast-iron teapot",
        blurb: "0.8 l, with strainer",
        price: 4200,
    },
    Product {
        sku: "kettle",
        name: "Gooseneck kettle",
        blurb: "1 l, stovetop",
        price: 5900,
    },
    Product {
        sku: "grinder",
        name: "Burr grinder",
        blurb: "hand-cranked, ceramic burrs",
        price: 6400,
    },
    Product {
        sku: "filters",
        name: "Paper filters",
        blurb: "pack of 100",
        price: 450,
    },
    Product {
        sku: "scale",
        name: "Kitchen scale",
        blurb: "0.1 g precision, timer",
        price: 2900,
    },
];

/// Most of one product in a cart.
const MAX_QTY: u32 = 99;

fn product(sku: &str) -> Option<&'static Product> {
    CATALOGUE.iter().find(|p| p.sku == sku)
}

/// A euro-cent amount in the chosen currency (display only, fixed rates).
fn money(eur_cents: u64, currency: Currency) -> String {
    let (symbol, per_100) = match currency {
        Currency::Eur => ("€", 100),
        Currency::Usd => ("$", 108),
        Currency::Gbp => ("£", 85),
    };
    let cents = (eur_cents * per_100 + 50) / 100;
    format!("{symbol}{}.{:02}", cents / 100, cents % 100)
}

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

/// A server-rendered shop on replicated sessions.
#[derive(Parser, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    launch: Launch,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs one store node (reads the secret from SHOP_CLUSTER_SECRET).
    Node(NodeArgs),
    /// Runs one application server (reads the secret from SHOP_CLUSTER_SECRET).
    App(AppArgs),
}

/// Where the launcher puts everything.
#[derive(Args, Debug)]
struct Launch {
    /// Store node 1 (the lowest id: it initialises the replica set).
    #[arg(long, default_value = "127.0.0.1:7101")]
    node_1: String,
    /// Store node 2.
    #[arg(long, default_value = "127.0.0.1:7102")]
    node_2: String,
    /// Store node 3.
    #[arg(long, default_value = "127.0.0.1:7103")]
    node_3: String,
    /// The first application server.
    #[arg(long, default_value = "127.0.0.1:3001")]
    app_a: String,
    /// The second application server.
    #[arg(long, default_value = "127.0.0.1:3002")]
    app_b: String,
    /// Where the store nodes keep their data, one directory per node
    /// (created if missing, kept on exit; the set remembers its members'
    /// addresses, so a later run on it must give the same ones). Default: a
    /// fresh folder in the system's temporary directory, removed on exit.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct NodeArgs {
    /// This node's id in the replica set (unique in the set; the node with
    /// the lowest id initialises a new set).
    #[arg(long)]
    id: u64,
    /// Address to listen on.
    #[arg(long)]
    listen: String,
    /// Directory of its Raft log, vote and snapshots (created if missing).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Another member of the replica set, as ID=ADDR (repeat for each).
    #[arg(long = "peer", value_name = "ID=ADDR", value_parser = session_runtime::node::parse_member)]
    peers: Vec<(u64, String)>,
    /// Exit when standard input reaches end of file (the launcher and the
    /// browser test hold it open, so their children do not outlive them).
    #[arg(long, hide = true)]
    exit_with_parent: bool,
}

#[derive(Args, Debug)]
struct AppArgs {
    /// Address to serve HTTP on.
    #[arg(long)]
    listen: String,
    /// A store node of the replica set (repeat for each).
    #[arg(long = "node", value_name = "ADDR", required = true)]
    nodes: Vec<String>,
    /// Exit when standard input reaches end of file.
    #[arg(long, hide = true)]
    exit_with_parent: bool,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // openraft narrates every election at info level.
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match cli.command {
        None => runtime.block_on(launch(cli.launch)),
        Some(Command::Node(args)) => runtime.block_on(run_node(args)),
        Some(Command::App(args)) => runtime.block_on(run_app(args)),
    }
}

/// The cluster secret from the environment.
fn cluster_secret() -> anyhow::Result<Vec<u8>> {
    let secret = std::env::var(SECRET_ENV).with_context(|| {
        format!("{SECRET_ENV} must hold the cluster secret (the launcher sets it)")
    })?;
    if secret.len() < 16 {
        bail!("{SECRET_ENV} is shorter than 16 bytes");
    }
    Ok(secret.into_bytes())
}

/// Resolves on Ctrl-C, on SIGTERM, and, if asked, when standard input
/// reaches end of file (the parent exited or let go of us).
async fn stop_signal(exit_with_parent: bool) {
    let parent_gone = async {
        if !exit_with_parent {
            return std::future::pending().await;
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut sink = [0u8; 256];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            let _ = tx.send(());
        });
        let _ = rx.await;
    };
    let terminate = async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    term.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
        _ = parent_gone => {}
    }
}

// ---------------------------------------------------------------------------
// `shop node`
// ---------------------------------------------------------------------------

async fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    let mut config = NodeConfig::new(
        args.id,
        args.listen.clone(),
        args.data_dir.clone(),
        cluster_secret()?,
    )
    .peers(args.peers);
    // Short timeouts, so that a killed leader is replaced within about a
    // second (fine on loopback; a real network wants more slack). Log
    // entries reach the OS before a node acknowledges them and are fsync'd
    // about once a second (the default): a killed process loses nothing.
    config.heartbeat = Duration::from_millis(100);
    config.election_timeout = Duration::from_millis(500);
    let node = Node::start(config).await.with_context(|| {
        format!(
            "starting store node {} on {} with data in {}",
            args.id,
            args.listen,
            args.data_dir.display()
        )
    })?;
    println!("shop: store node {} listening on {}", args.id, node.addr());
    stop_signal(args.exit_with_parent).await;
    node.shutdown().await;
    Ok(())
}

// ---------------------------------------------------------------------------
// `shop app`
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct App {
    client: Client,
    /// This server's address, shown in every page's footer.
    served_by: String,
}

type AppState = Arc<App>;

async fn run_app(args: AppArgs) -> anyhow::Result<()> {
    let secret = cluster_secret()?;
    // A change is acknowledged (and the page redirects) only once a majority
    // of the set, two of the three nodes, holds it in its log, so nothing a
    // shopper saw is lost when any one node fails: the other two elect a
    // leader among themselves and go on. With two nodes gone there is no
    // majority, and every page fails (503, after the failover timeout) until
    // one is back: the leader confirms its leadership before it answers a
    // read, too. A call retries across an election for up to 5 s; a write
    // whose answer was lost in one is reported as uncertain (a 503 as well:
    // it may still be committed, and reloading the page tells).
    let mut config = ClientConfig::new(args.nodes.clone(), secret.clone());
    config.failover_timeout = Duration::from_secs(5);
    let client = Client::connect(config)
        .await
        .with_context(|| format!("connecting to the store nodes {:?}", args.nodes))?;

    // Both application servers sign cookies with the same key, derived from
    // the cluster secret (and distinct from it), so that either accepts the
    // cookie the other set.
    let mut cookie =
        CookieConfig::new(auth::prove(&secret, &[b"shop cookie signing key"]).to_vec());
    // The demo serves plain HTTP on loopback. A `Secure` cookie is only sent
    // over HTTPS (some browsers make an exception for localhost, not all),
    // so it is turned off here. Behind TLS, keep the default (`secure`).
    cookie.secure = false;

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let state = Arc::new(App {
        client: client.clone(),
        served_by: addr.to_string(),
    });
    let app = Router::new()
        .route("/", get(catalogue))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/cart", get(cart_page))
        .route("/cart/add", post(cart_add))
        .route("/cart/update", post(cart_update))
        .route("/cart/remove", post(cart_remove))
        .route("/prefs", get(prefs_page).post(save_prefs))
        .route("/stats", get(stats_page))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .with_state(state)
        .layer(SessionLayer::<_, Shop>::new(client, cookie));
    println!("shop: application server on http://{addr}/");
    axum::serve(listener, app)
        .with_graceful_shutdown(stop_signal(args.exit_with_parent))
        .await
        .context("serving HTTP")?;
    Ok(())
}

/// A page's outcome: the page, or a redirect.
type Page = Result<Html<String>, Response>;

fn to_login() -> Response {
    Redirect::to("/login").into_response()
}

fn bad_request(app: &App, message: &str) -> Response {
    let body = format!(
        r#"<h1>Bad request</h1><p class="notice error">{}</p><p><a href="/">Back to the shop</a></p>"#,
        esc(message)
    );
    (
        StatusCode::BAD_REQUEST,
        layout(app, None, "", "Bad request", &body),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct Added {
    added: Option<String>,
}

async fn catalogue(
    State(app): State<AppState>,
    Query(q): Query<Added>,
    mut session: TrackedSession<Shop>,
) -> Page {
    let Some(tracked) = session.tracked_mut() else {
        return Err(to_login());
    };
    {
        let visits = tracked.edit().visits();
        *visits = visits.saturating_add(1);
    }
    let shop: &Shop = tracked;
    let currency = shop.prefs.currency;
    let mut body = String::new();
    if let Some(p) = q.added.as_deref().and_then(product) {
        let _ = write!(
            body,
            r#"<p class="notice">Added <b>{}</b> to your cart. <a href="/cart">View cart</a></p>"#,
            esc(p.name)
        );
    }
    let _ = write!(
        body,
        r#"<h1>Hello, {}</h1><p class="muted">Visit number {} to the shop in this session.</p><div class="grid">"#,
        esc(&shop.user),
        shop.visits
    );
    for p in &CATALOGUE {
        let in_cart = shop
            .cart
            .iter()
            .find(|l| l.sku == p.sku)
            .map_or(0, |l| l.qty);
        let badge = if in_cart > 0 {
            format!(r#"<span class="badge">{in_cart} in cart</span>"#)
        } else {
            String::new()
        };
        let _ = write!(
            body,
            r#"<div class="card product"><div class="title">{name}</div><div class="muted">{blurb}</div>
<div class="buy"><div class="row"><span class="price">{price}</span>{badge}</div>
<form method="post" action="/cart/add"><input type="hidden" name="sku" value="{sku}">
<button id="add-{sku}" type="submit">Add to cart</button></form></div></div>"#,
            name = esc(p.name),
            blurb = esc(p.blurb),
            price = money(p.price, currency),
            sku = esc(p.sku),
        );
    }
    body.push_str("</div>");
    Ok(layout(&app, Some(shop), "/", "Products", &body))
}

async fn login_page(State(app): State<AppState>, session: TrackedSession<Shop>) -> Html<String> {
    let current = session
        .get()
        .map(|s| {
            format!(
                r#"<p class="notice">You are logged in as <b>{}</b>. Logging in again starts a new session.</p>"#,
                esc(&s.user)
            )
        })
        .unwrap_or_default();
    let body = format!(
        r#"<div class="card narrow"><h1>Log in</h1>{current}
<p class="muted">Any name will do: this shop has no passwords.</p>
<form method="post" action="/login" class="stack">
<label>Name <input id="name" name="name" maxlength="40" required autofocus></label>
<button id="login" type="submit">Log in</button></form></div>"#
    );
    layout(&app, session.get(), "/login", "Log in", &body)
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    name: String,
}

async fn login(
    State(app): State<AppState>,
    mut session: TrackedSession<Shop>,
    Form(form): Form<LoginForm>,
) -> Response {
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 40 || name.chars().any(char::is_control) {
        return bad_request(&app, "A name is 1 to 40 printable characters.");
    }
    // A fresh session under a fresh id: an id planted before login (session
    // fixation) is worthless afterwards, and the old session is deleted.
    session.start(Shop::new(name.to_string()));
    Redirect::to("/").into_response()
}

async fn logout(mut session: TrackedSession<Shop>) -> Redirect {
    session.end();
    Redirect::to("/login")
}

async fn cart_page(State(app): State<AppState>, session: TrackedSession<Shop>) -> Page {
    let Some(shop) = session.get() else {
        return Err(to_login());
    };
    let currency = shop.prefs.currency;
    let mut body = String::from("<h1>Your cart</h1>");
    if shop.cart.is_empty() {
        body.push_str(
            r#"<p class="card">Your cart is empty. <a href="/">Browse the products</a>.</p>"#,
        );
        return Ok(layout(&app, Some(shop), "/cart", "Cart", &body));
    }
    body.push_str(
        r#"<table id="cart"><thead><tr><th>Product</th><th class="num">Price</th><th>Quantity</th><th class="num">Subtotal</th><th></th></tr></thead><tbody>"#,
    );
    let mut total = 0u64;
    for line in &shop.cart {
        // Only catalogue products get into a cart.
        let Some(p) = product(&line.sku) else {
            continue;
        };
        let subtotal = p.price * u64::from(line.qty);
        total += subtotal;
        let _ = write!(
            body,
            r#"<tr class="line" data-sku="{sku}" data-qty="{qty}"><td>{name}</td><td class="num">{price}</td>
<td><form method="post" action="/cart/update" class="inline"><input type="hidden" name="sku" value="{sku}">
<input id="qty-{sku}" class="qty" type="number" name="qty" min="0" max="{MAX_QTY}" value="{qty}">
<button id="update-{sku}" class="secondary" type="submit">Update</button></form></td>
<td class="num">{subtotal}</td>
<td><form method="post" action="/cart/remove" class="inline"><input type="hidden" name="sku" value="{sku}">
<button id="remove-{sku}" class="danger" type="submit">Remove</button></form></td></tr>"#,
            sku = esc(p.sku),
            qty = line.qty,
            name = esc(p.name),
            price = money(p.price, currency),
            subtotal = money(subtotal, currency),
        );
    }
    let _ = write!(
        body,
        r#"</tbody><tfoot><tr><th colspan="3">Total ({items} items)</th><th class="num" id="total">{total}</th><th></th></tr></tfoot></table>"#,
        items = shop.items(),
        total = money(total, currency),
    );
    Ok(layout(&app, Some(shop), "/cart", "Cart", &body))
}

#[derive(Debug, Deserialize)]
struct SkuForm {
    sku: String,
}

async fn cart_add(
    State(app): State<AppState>,
    mut session: TrackedSession<Shop>,
    Form(form): Form<SkuForm>,
) -> Response {
    let Some(p) = product(&form.sku) else {
        return bad_request(&app, "No such product.");
    };
    let Some(tracked) = session.tracked_mut() else {
        return to_login();
    };
    let cart = tracked.edit().cart();
    match cart.iter_mut().find(|l| l.sku == p.sku) {
        Some(line) => line.qty = (line.qty + 1).min(MAX_QTY),
        None => cart.push(CartLine {
            sku: p.sku.to_string(),
            qty: 1,
        }),
    }
    Redirect::to(&format!("/?added={}", p.sku)).into_response()
}

#[derive(Debug, Deserialize)]
struct QtyForm {
    sku: String,
    qty: String,
}

async fn cart_update(
    State(app): State<AppState>,
    mut session: TrackedSession<Shop>,
    Form(form): Form<QtyForm>,
) -> Response {
    let qty = match form.qty.trim().parse::<u32>() {
        Ok(q) if q <= MAX_QTY => q,
        _ => {
            return bad_request(
                &app,
                &format!("A quantity is a whole number from 0 to {MAX_QTY}."),
            )
        }
    };
    let Some(tracked) = session.tracked_mut() else {
        return to_login();
    };
    let Some(index) = tracked.cart.iter().position(|l| l.sku == form.sku) else {
        return bad_request(&app, "That product is not in your cart.");
    };
    if qty == 0 {
        tracked.edit().cart().remove(index);
    } else if tracked.cart[index].qty != qty {
        tracked.edit().cart()[index].qty = qty;
    }
    Redirect::to("/cart").into_response()
}

async fn cart_remove(
    State(app): State<AppState>,
    mut session: TrackedSession<Shop>,
    Form(form): Form<SkuForm>,
) -> Response {
    let Some(tracked) = session.tracked_mut() else {
        return to_login();
    };
    let Some(index) = tracked.cart.iter().position(|l| l.sku == form.sku) else {
        return bad_request(&app, "That product is not in your cart.");
    };
    tracked.edit().cart().remove(index);
    Redirect::to("/cart").into_response()
}

#[derive(Debug, Deserialize)]
struct Saved {
    saved: Option<String>,
}

async fn prefs_page(
    State(app): State<AppState>,
    Query(q): Query<Saved>,
    session: TrackedSession<Shop>,
) -> Page {
    let Some(shop) = session.get() else {
        return Err(to_login());
    };
    let p = &shop.prefs;
    let checked = |on: bool| if on { " checked" } else { "" };
    let selected = |on: bool| if on { " selected" } else { "" };
    let notice = if q.saved.is_some() {
        r#"<p class="notice">Preferences saved.</p>"#
    } else {
        ""
    };
    let body = format!(
        r#"<h1>Preferences</h1>{notice}<div class="card narrow"><form method="post" action="/prefs" class="stack">
<fieldset><legend>Theme</legend>
<label><input type="radio" name="theme" value="light"{light}> Light</label>
<label><input type="radio" name="theme" value="dark"{dark}> Dark</label></fieldset>
<label>Currency <select name="currency" id="currency">
<option value="eur"{eur}>Euro (€)</option><option value="usd"{usd}>US dollar ($)</option><option value="gbp"{gbp}>Pound sterling (£)</option>
</select></label>
<label><input type="checkbox" name="newsletter" value="yes"{news}> Send me the newsletter</label>
<button id="save-prefs" type="submit">Save</button></form></div>
<p class="muted">Saving ships only the preferences that changed.</p>"#,
        light = checked(p.theme == Theme::Light),
        dark = checked(p.theme == Theme::Dark),
        eur = selected(p.currency == Currency::Eur),
        usd = selected(p.currency == Currency::Usd),
        gbp = selected(p.currency == Currency::Gbp),
        news = checked(p.newsletter),
    );
    Ok(layout(&app, Some(shop), "/prefs", "Preferences", &body))
}

#[derive(Debug, Deserialize)]
struct PrefsForm {
    theme: String,
    currency: String,
    newsletter: Option<String>,
}

async fn save_prefs(
    State(app): State<AppState>,
    mut session: TrackedSession<Shop>,
    Form(form): Form<PrefsForm>,
) -> Response {
    let theme = match form.theme.as_str() {
        "light" => Theme::Light,
        "dark" => Theme::Dark,
        _ => return bad_request(&app, "Unknown theme."),
    };
    let currency = match form.currency.as_str() {
        "eur" => Currency::Eur,
        "usd" => Currency::Usd,
        "gbp" => Currency::Gbp,
        _ => return bad_request(&app, "Unknown currency."),
    };
    let newsletter = form.newsletter.is_some();
    let Some(tracked) = session.tracked_mut() else {
        return to_login();
    };
    let wanted = Prefs {
        theme,
        currency,
        newsletter,
    };
    if tracked.prefs != wanted {
        // The nested session is diffed field by field: only what changed
        // is shipped.
        *tracked.edit().prefs() = wanted;
    }
    Redirect::to("/prefs?saved=1").into_response()
}

async fn stats_page(State(app): State<AppState>, mut session: TrackedSession<Shop>) -> Page {
    let Some(tracked) = session.tracked_mut() else {
        return Err(to_login());
    };
    let version = tracked.version();
    let shop: &Shop = tracked;
    let full = shop.to_bytes().len();
    // What two typical changes to this session cost as deltas (computed on
    // a copy; nothing is stored).
    let mut probe = Tracked::new(shop.clone());
    let visits = probe.edit().visits();
    *visits = visits.wrapping_add(1);
    let visit_delta = probe.pending_delta().encoded_len();
    let mut probe = Tracked::new(shop.clone());
    if probe.cart.is_empty() {
        probe.edit().cart().push(CartLine {
            sku: "sencha".into(),
            qty: 1,
        });
    } else {
        probe.edit().cart()[0].qty += 1;
    }
    let cart_delta = probe.pending_delta().encoded_len();
    let cart_change = if shop.cart.is_empty() {
        "the added line"
    } else {
        "the new quantity of one line"
    };

    let mut body = String::from(r#"<h1>Replication</h1><div class="cols">"#);
    let _ = write!(
        body,
        r#"<div class="card"><h2>This session</h2><table class="kv">
<tr><th>Version</th><td id="session-version">{version}</td></tr>
<tr><th>Full encoded size</th><td id="session-bytes">{full} bytes</td></tr>
<tr><th>One visit, as a delta</th><td>{visit_delta} bytes</td></tr>
<tr><th>One cart change, as a delta</th><td>{cart_delta} bytes</td></tr>
</table><p class="muted small">A commit ships the changed fields only (a visit: the counter; a cart change: {cart_change}), not the whole session.</p></div>"#
    );
    // The counters of the leader this application server talks to (one
    // replica set here).
    let leader = match app.client.stats().await {
        Ok(sets) => {
            let first = sets.into_iter().next();
            if first.is_none() {
                body.push_str("</div>");
            }
            first
        }
        Err(e) => {
            let _ = write!(
                body,
                r#"</div><p class="notice error">The store's counters are unavailable: {}</p>"#,
                esc(&e.to_string())
            );
            None
        }
    };
    if let Some(s) = leader {
        // The node the client took for the leader answered; right after an
        // election it may be one that has just lost the lead.
        let leader = if s.role == Role::Leader {
            format!(
                r#"node <span id="leader-id">{}</span> at <b id="leader">{}</b>"#,
                s.id,
                esc(&s.node)
            )
        } else {
            format!(
                "{} (asked node {} at {}, a {})",
                s.leader
                    .map_or_else(|| "none yet".to_string(), |l| format!("node {l}")),
                s.id,
                esc(&s.node),
                s.role.name()
            )
        };
        // Roles as that node's membership has them: a member that is down
        // stays a voter (shown as follower) until it is removed from the set.
        let members = s
            .voters
            .iter()
            .map(|&v| {
                let role = if v == s.id {
                    s.role
                } else if Some(v) == s.leader {
                    Role::Leader
                } else {
                    Role::Follower
                };
                (v, role)
            })
            .chain(s.learners.iter().map(|&l| {
                let role = if l == s.id { s.role } else { Role::Learner };
                (l, role)
            }))
            .map(|(id, role)| {
                format!(
                    r#"<span class="member" data-id="{id}" data-role="{role}">node {id}: {role}</span>"#,
                    role = role.name()
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            body,
            r#"<div class="card"><h2>Replica set</h2><table class="kv">
<tr><th>Leader</th><td>{leader}</td></tr>
<tr><th>Term</th><td id="term">{term}</td></tr>
<tr><th>Members</th><td id="members">{members}</td></tr>
<tr><th>Sessions held</th><td id="sessions">{sessions} ({session_bytes} bytes)</td></tr>
</table><p class="muted small">Roles as the set's membership has them: a node that is down stays listed (as a follower) until it is removed from the set.</p></div></div>"#,
            term = s.term,
            sessions = s.sessions,
            session_bytes = s.session_bytes,
        );
        let per_entry = s.bytes_shipped.checked_div(s.entries_shipped);
        let per_session = s.session_bytes.checked_div(s.sessions);
        let widest = per_entry.unwrap_or(0).max(per_session.unwrap_or(0)).max(1) as f64;
        let bar = |v: Option<u64>| 100.0 * v.unwrap_or(0) as f64 / widest;
        let bytes = |v: Option<u64>| v.map_or_else(|| "–".to_string(), |v| format!("{v} B"));
        // Each entry carries one operation: a commit its delta, a create
        // the new session whole.
        const WHAT: &str = "Each entry carries only the fields its commit changed, not the \
                            whole session, plus a fixed overhead (which session and version, \
                            the commit's id, Raft's term and index), so the larger the session, \
                            the more an entry saves";
        let verdict = match (per_entry, per_session) {
            (None, _) => "Nothing shipped yet: this node has sent no log entries to another \
                          member since it started."
                .to_string(),
            (Some(_), None) => format!("{WHAT}."),
            (Some(e), Some(p)) => format!(
                "{WHAT}: here an entry averages <b>{:.0}%</b> of the size of a session.",
                100.0 * e as f64 / p.max(1) as f64
            ),
        };
        let _ = write!(
            body,
            r#"<div class="card"><h2>Shipped to the other members by node {id}</h2>
<p class="muted small">All sessions, since the node started (an entry counts once per member it went to): <b id="entries-shipped">{entries}</b> log entries in <b id="bytes-shipped">{shipped}</b> bytes.</p>
<div class="bars">
<div class="barrow"><span>per entry</span><div class="track"><div class="fill delta" style="width:{be:.1}%"></div></div><b id="bytes-per-entry">{per_entry}</b></div>
<div class="barrow"><span>per session</span><div class="track"><div class="fill full" style="width:{bs:.1}%"></div></div><b id="bytes-per-session">{per_session}</b></div>
</div><p>{verdict}</p></div>"#,
            id = s.id,
            entries = s.entries_shipped,
            shipped = s.bytes_shipped,
            be = bar(per_entry),
            bs = bar(per_session),
            per_entry = bytes(per_entry),
            per_session = bytes(per_session),
        );
    }
    Ok(layout(&app, Some(shop), "/stats", "Stats", &body))
}

// ---------------------------------------------------------------------------
// HTML
// ---------------------------------------------------------------------------

/// Escapes text for HTML element content and quoted attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root{--bg:#f5f6f8;--fg:#1c2230;--card:#fff;--muted:#687082;--accent:#2f6fed;--accent-fg:#fff;--line:#e2e5ea;--notice:#e8f0fe;--danger:#c8372d}
body.dark{--bg:#12151a;--fg:#e4e7ec;--card:#1b2029;--muted:#97a0ae;--accent:#6a9bff;--accent-fg:#0b1020;--line:#2b323d;--notice:#1d2a44;--danger:#ff7b70}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;background:var(--bg);color:var(--fg)}
a{color:var(--accent)}
header{background:var(--card);border-bottom:1px solid var(--line)}
.bar{max-width:980px;margin:0 auto;padding:10px 20px;display:flex;gap:8px;align-items:center;flex-wrap:wrap}
.brand{font-weight:700;font-size:18px;margin-right:auto;color:var(--fg);text-decoration:none;display:flex;align-items:center;gap:8px}
.logo{display:inline-grid;place-items:center;width:28px;height:28px;border-radius:8px;background:#2fa36b;color:#fff;font-size:16px}
nav a{color:var(--fg);text-decoration:none;padding:6px 10px;border-radius:6px}
nav a.on{background:var(--accent);color:var(--accent-fg)}
.user{color:var(--muted);margin-left:8px}
main{max-width:980px;margin:24px auto;padding:0 20px}
h1{font-size:24px;margin:0 0 12px}h2{font-size:18px;margin:0 0 10px}h3{font-size:15px;margin:16px 0 8px}
.muted{color:var(--muted)}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:16px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px;margin-bottom:16px}
.narrow{max-width:420px}
.product{display:flex;flex-direction:column;gap:6px;margin:0}
.product .title{font-weight:600}
.product .buy{margin-top:auto;display:flex;flex-direction:column;gap:10px;padding-top:6px}
.row{display:flex;justify-content:space-between;align-items:center}
.price{font-weight:700;font-size:17px}
.badge{background:var(--notice);border-radius:999px;padding:2px 8px;font-size:12px}
button{font:inherit;border:0;border-radius:6px;padding:7px 14px;background:var(--accent);color:var(--accent-fg);cursor:pointer}
button.secondary{background:transparent;color:var(--accent);border:1px solid var(--accent);padding:4px 10px}
button.danger{background:transparent;color:var(--danger);border:1px solid var(--danger);padding:4px 10px}
button.link{background:transparent;color:var(--fg);padding:6px 10px}
input,select{font:inherit;padding:6px 8px;border:1px solid var(--line);border-radius:6px;background:var(--bg);color:var(--fg)}
input.qty{width:64px}
.stack{display:flex;flex-direction:column;gap:12px;align-items:flex-start}
.stack label{display:flex;gap:8px;align-items:center}
fieldset{border:1px solid var(--line);border-radius:8px;display:flex;gap:16px}
form.inline{display:inline-flex;gap:6px;align-items:center;margin:0}
table{width:100%;border-collapse:collapse;background:var(--card);border:1px solid var(--line);border-radius:10px;overflow:hidden}
th,td{padding:10px 12px;border-bottom:1px solid var(--line);text-align:left;vertical-align:middle}
.num{text-align:right;white-space:nowrap}
tfoot th{font-size:16px}
table.kv{border:0;border-radius:0}table.kv th{width:48%;font-weight:500;color:var(--muted);padding-left:0}
table.kv tr:last-child th,table.kv tr:last-child td{border-bottom:0}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:16px}.cols .card{margin:0}.cols{margin-bottom:16px}
.small{font-size:13px}
.notice{background:var(--notice);border-radius:8px;padding:10px 14px}
.notice.error{color:var(--danger)}
.bars{display:flex;flex-direction:column;gap:8px}
.barrow{display:grid;grid-template-columns:90px 1fr 110px;gap:10px;align-items:center}
.barrow b{text-align:right}
.track{background:var(--bg);border-radius:6px;height:18px;overflow:hidden}
.fill{height:100%;min-width:2px}.fill.delta{background:#2fa36b}.fill.full{background:#d9822b}
footer{max-width:980px;margin:24px auto 32px;padding:12px 20px 0;color:var(--muted);font-size:13px;border-top:1px solid var(--line)}
"#;

/// The page around `body`: navigation (for a logged-in shopper) and a
/// footer naming the application server.
fn layout(app: &App, shop: Option<&Shop>, here: &str, title: &str, body: &str) -> Html<String> {
    let theme = match shop.map(|s| s.prefs.theme) {
        Some(Theme::Dark) => "dark",
        _ => "light",
    };
    let nav = match shop {
        Some(s) => {
            let link = |href: &str, label: &str| {
                let class = if href == here { r#" class="on""# } else { "" };
                format!(r#"<a href="{href}"{class}>{label}</a>"#)
            };
            format!(
                r#"<nav>{}{}{}{}</nav><span class="user">{}</span>
<form method="post" action="/logout" class="inline"><button id="logout" class="link" type="submit">Log out</button></form>"#,
                link("/", "Products"),
                link("/cart", &format!("Cart ({})", s.items())),
                link("/prefs", "Preferences"),
                link("/stats", "Stats"),
                esc(&s.user),
            )
        }
        None => String::new(),
    };
    let started = shop
        .map(|s| {
            let t = s.created_at % 86_400;
            format!(
                " · session started {:02}:{:02}:{:02} UTC",
                t / 3600,
                t / 60 % 60,
                t % 60
            )
        })
        .unwrap_or_default();
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title} · Teahouse</title><style>{STYLE}</style></head>
<body class="{theme}"><header><div class="bar"><a class="brand" href="/"><span class="logo">T</span>Teahouse</a>{nav}</div></header>
<main>{body}</main>
<footer>served by app <b id="served-by">{served_by}</b>{started}</footer>
</body></html>"#,
        title = esc(title),
        served_by = esc(&app.served_by),
    ))
}

// ---------------------------------------------------------------------------
// The launcher
// ---------------------------------------------------------------------------

/// The launcher's children, killed when it returns.
#[derive(Debug, Default)]
struct Children(Vec<(String, Child)>);

impl Children {
    fn spawn(&mut self, exe: &Path, name: &str, secret: &str, args: &[&str]) -> anyhow::Result<()> {
        let child = std::process::Command::new(exe)
            .args(args)
            .arg("--exit-with-parent")
            .env(SECRET_ENV, secret)
            // Held open by us: a child exits when we do, however we exit.
            .stdin(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        self.0.push((name.to_string(), child));
        Ok(())
    }

    /// The first child that exited, with its status.
    fn exited(&mut self) -> Option<(String, ExitStatus)> {
        self.0
            .iter_mut()
            .find_map(|(name, child)| match child.try_wait() {
                Ok(Some(status)) => Some((name.clone(), status)),
                _ => None,
            })
    }

    /// Asks every child to stop (end of its standard input), waits a
    /// little, then kills those still running.
    fn stop(&mut self) {
        for (_, child) in &mut self.0 {
            drop(child.stdin.take());
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline
            && self
                .0
                .iter_mut()
                .any(|(_, c)| matches!(c.try_wait(), Ok(None)))
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.0.clear();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.stop();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn accepts(addr: &str) -> bool {
    addr.parse::<SocketAddr>()
        .is_ok_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok())
}

/// The launcher's data folder when it made one itself: removed on drop
/// (after the children, which are declared after it, are stopped).
#[derive(Debug)]
struct TempData(PathBuf);

impl Drop for TempData {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn launch(args: Launch) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding this executable")?;
    // A fresh cluster secret per run, handed to the children only.
    let secret = hex(&auth::nonce());
    let (data, _temp) = match &args.data_dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let dir = std::env::temp_dir().join(format!("shop-{}", std::process::id()));
            // A leftover of an earlier run with the same pid is not ours.
            let _ = std::fs::remove_dir_all(&dir);
            (dir.clone(), Some(TempData(dir)))
        }
    };
    let nodes = [
        (1u64, args.node_1.as_str()),
        (2, args.node_2.as_str()),
        (3, args.node_3.as_str()),
    ];
    let mut children = Children::default();
    for (id, addr) in nodes {
        let dir = data.join(format!("node-{id}"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the data directory {}", dir.display()))?;
        let mut node_args = vec![
            "node".to_string(),
            "--id".into(),
            id.to_string(),
            "--listen".into(),
            addr.into(),
            "--data-dir".into(),
            dir.display().to_string(),
        ];
        for (peer, peer_addr) in nodes.iter().filter(|(p, _)| *p != id) {
            node_args.push("--peer".into());
            node_args.push(format!("{peer}={peer_addr}"));
        }
        let node_args: Vec<&str> = node_args.iter().map(String::as_str).collect();
        children.spawn(&exe, &format!("store node {id}"), &secret, &node_args)?;
    }
    for (name, app) in [("app server A", &args.app_a), ("app server B", &args.app_b)] {
        let mut app_args = vec!["app", "--listen", app];
        for (_, addr) in nodes {
            app_args.extend(["--node", addr]);
        }
        children.spawn(&exe, name, &secret, &app_args)?;
    }

    // Ready when both application servers accept connections (they connect
    // to the store first).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(accepts(&args.app_a) && accepts(&args.app_b)) {
        if let Some((name, status)) = children.exited() {
            bail!("{name} exited during start-up ({status}); is a port in use?");
        }
        if Instant::now() > deadline {
            bail!("the application servers did not start within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!();
    println!(
        "shop: store nodes   1 on {}, 2 on {}, 3 on {} (any of them may lead)",
        args.node_1, args.node_2, args.node_3
    );
    println!("shop: data in       {}", data.display());
    println!(
        "shop: open          http://{}/  or  http://{}/",
        args.app_a, args.app_b
    );
    println!("shop: Ctrl-C stops everything");
    println!();

    let stopped = stop_signal(false);
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => {
                println!("shop: stopping");
                children.stop();
                return Ok(());
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if let Some((name, status)) = children.exited() {
                    children.stop();
                    bail!("{name} exited ({status}); stopped everything");
                }
            }
        }
    }
}
