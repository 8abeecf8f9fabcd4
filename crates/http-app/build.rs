//! Embeds every file under the workspace's `templates/` in the binary, so a deployed
//! `http-app` needs no template folder beside it and a missing template is a build error.

use std::{
    env, fs,
    path::{Path, PathBuf},
};

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let entries = fs::read_dir(dir).expect("the templates folder is readable");
    for entry in entries {
        let path = entry.expect("a readable folder entry").path();
        if path.is_dir() {
            collect(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "html") {
            let name = path
                .strip_prefix(root)
                .expect("inside the templates folder")
                .to_string_lossy()
                .replace('\\', "/");
            out.push((name, path));
        }
    }
}

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest.join("../../templates");
    let root = root
        .canonicalize()
        .expect("the workspace has a templates folder");
    println!("cargo:rerun-if-changed={}", root.display());
    // fluent-templates embeds the locales at compile time; rebuild when they change.
    println!(
        "cargo:rerun-if-changed={}",
        manifest.join("../../locales").display()
    );
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    files.sort();
    let mut code = String::from("&[\n");
    for (name, path) in files {
        code.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    code.push_str("]\n");
    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo")).join("templates.rs");
    fs::write(out, code).expect("OUT_DIR is writable");
}
