//! Embeds the web UI's static assets (docs/WEB.md "Assets"):
//! - the NHS.UK frontend (npm `nhsuk-frontend`, pinned by `web/package-lock.json`): its minified
//!   CSS and ES-module JS and the images the CSS and favicon links use, copied from
//!   `web/node_modules/nhsuk-frontend/dist/nhsuk/`;
//! - the project's own files in `crates/cpis-web/assets/`.
//!
//! Everything lands in `$OUT_DIR/web-assets/` and `$OUT_DIR/web_assets.rs` lists it for
//! `include_bytes!`. All files are served under `/assets/<id>/`, where `<id>` is a hash of their
//! content, so they can be cached for a year. If the npm package is missing, this runs
//! `npm ci --prefix web`; if that fails too it warns and embeds an empty stylesheet (the browser
//! tests then fail: they check the NHS.UK styles are applied) so `cargo build` never breaks.

use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const NHSUK_CSS: &str = "nhsuk-frontend.min.css";
const NHSUK_JS: &str = "nhsuk-frontend.min.js";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("out dir")).join("web-assets");
    let web = manifest.join("../../web");
    let own = manifest.join("assets");
    let package = web.join("node_modules/nhsuk-frontend");

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", own.display());
    println!(
        "cargo:rerun-if-changed={}",
        web.join("package.json").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        web.join("package-lock.json").display()
    );
    println!("cargo:rerun-if-env-changed=CPIS_SKIP_NPM");

    if !package.join("package.json").is_file() && std::env::var_os("CPIS_SKIP_NPM").is_none() {
        npm_ci(&web);
    }
    let version = package_version(&package);
    match &version {
        // Rebuild when the installed package changes (npm rewrites its package.json).
        Some(_) => println!(
            "cargo:rerun-if-changed={}",
            package.join("package.json").display()
        ),
        // Rebuild once someone installs it.
        None => println!("cargo:rerun-if-changed={}", web.display()),
    }

    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(out.join("images")).expect("create the assets dir");
    let mut files: Vec<String> = Vec::new();
    match &version {
        Some(_) => copy_nhsuk(&package.join("dist/nhsuk"), &out, &mut files),
        None => {
            println!(
                "cargo:warning=nhsuk-frontend is not installed in web/node_modules and `npm ci \
                 --prefix web` failed: the web UI is built WITHOUT the NHS.UK styles. Run \
                 `npm ci --prefix web` and build again."
            );
            write(
                &out,
                NHSUK_CSS,
                b"/* nhsuk-frontend was missing at build time */\n",
                &mut files,
            );
            write(
                &out,
                NHSUK_JS,
                b"export function initAll() {}\n",
                &mut files,
            );
        }
    }
    let mut own_files: Vec<PathBuf> = std::fs::read_dir(&own)
        .expect("crates/cpis-web/assets")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    own_files.sort();
    for path in own_files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("file name");
        let bytes = std::fs::read(&path).expect("read an asset");
        write(&out, name, &bytes, &mut files);
    }
    generate(&out, version.as_deref().unwrap_or("missing"), &files);
}

fn npm_ci(web: &Path) {
    let npm = std::env::var("NPM").unwrap_or_else(|_| "npm".into());
    let status = Command::new(&npm)
        .arg("ci")
        .arg("--prefix")
        .arg(web)
        .args(["--no-audit", "--no-fund"])
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => println!("cargo:warning=`{npm} ci --prefix web` failed ({s})"),
        Err(e) => println!("cargo:warning=could not run `{npm} ci --prefix web`: {e}"),
    }
}

/// The installed package's version, from its package.json (`"version": "10.6.1"`).
fn package_version(package: &Path) -> Option<String> {
    let text = std::fs::read_to_string(package.join("package.json")).ok()?;
    let rest = &text[text.find("\"version\"")? + "\"version\"".len()..];
    let start = rest.find('"')? + 1;
    let len = rest[start..].find('"')?;
    let version = &rest[start..start + len];
    (package.join("dist/nhsuk").join(NHSUK_CSS).is_file()).then(|| version.to_owned())
}

fn copy_nhsuk(dist: &Path, out: &Path, files: &mut Vec<String>) {
    let css = std::fs::read_to_string(dist.join(NHSUK_CSS)).expect("nhsuk-frontend CSS");
    write(out, NHSUK_CSS, css_for_embedding(&css).as_bytes(), files);
    let js = std::fs::read_to_string(dist.join(NHSUK_JS)).expect("nhsuk-frontend JS");
    let js = js.replace("//# sourceMappingURL=nhsuk-frontend.min.js.map", "");
    write(out, NHSUK_JS, js.as_bytes(), files);
    let mut images: Vec<PathBuf> = std::fs::read_dir(dist.join("assets/images"))
        .expect("nhsuk-frontend images")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    images.sort();
    for path in images {
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        let bytes = std::fs::read(&path).expect("read an image");
        write(out, &format!("images/{name}"), &bytes, files);
    }
}

/// The stylesheet as served: image URLs relative to it (it is served beside `images/`), and no
/// `@font-face` rules loading fonts from assets.nhs.uk (the CSP allows only this origin, and the
/// Frutiger fonts are not in the package; the CSS falls back to Arial as NHS.UK intends).
fn css_for_embedding(css: &str) -> String {
    let mut css = css.replace("url(/assets/images/", "url(images/");
    while let Some(start) = css.find("@font-face{") {
        let Some(len) = css[start..].find('}') else {
            break;
        };
        css.replace_range(start..start + len + 1, "");
    }
    css.replace("\n/*# sourceMappingURL=nhsuk-frontend.min.css.map */", "")
        .replace("/*# sourceMappingURL=nhsuk-frontend.min.css.map */", "")
}

fn write(out: &Path, name: &str, bytes: &[u8], files: &mut Vec<String>) {
    std::fs::write(out.join(name), bytes).expect("write an asset");
    files.push(name.to_owned());
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// `$OUT_DIR/web_assets.rs`: the asset id, the nhsuk-frontend version and the file table.
fn generate(out: &Path, version: &str, files: &[String]) {
    let mut hash = Sha256::new();
    hash.update(version.as_bytes());
    let mut table = String::new();
    for name in files {
        let bytes = std::fs::read(out.join(name)).expect("read back an asset");
        hash.update(name.as_bytes());
        hash.update(&bytes);
        let path = out.join(name);
        writeln!(
            table,
            "    AssetFile {{ name: {name:?}, content_type: {ct:?}, bytes: include_bytes!({path:?}) }},",
            ct = content_type(name),
            path = path.display().to_string(),
        )
        .expect("write to a string");
    }
    let digest = hash.finalize();
    let id: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let code = format!(
        "/// Content hash of every embedded asset: the `/assets/<id>/` path segment.\n\
         pub const ASSET_ID: &str = {id:?};\n\
         /// The embedded nhsuk-frontend version (`missing` when it was not installed).\n\
         pub const NHSUK_FRONTEND_VERSION: &str = {version:?};\n\
         pub static FILES: &[AssetFile] = &[\n{table}];\n"
    );
    let target = out.parent().expect("OUT_DIR").join("web_assets.rs");
    std::fs::write(target, code).expect("write web_assets.rs");
}
