//! Links httpd as a guest and compiles its site into it: every file under
//! `site/` becomes an entry of a table of (path, bytes), plus two generated
//! files for benchmarks, `/bench/1k.bin` and `/bench/1m.bin`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, PathBuf)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("read site dir").flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        if path.is_dir() {
            walk(&path, root, out);
        } else {
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            out.push((format!("/{rel}"), path.canonicalize().unwrap()));
        }
    }
}

fn main() {
    libos_build::link_guest();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("site");
    println!("cargo:rerun-if-changed={}", root.display());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    for (name, size) in [("1k.bin", 1024usize), ("1m.bin", 1024 * 1024)] {
        let path = out.join(name);
        let bytes: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        std::fs::write(&path, bytes).unwrap();
        files.push((format!("/bench/{name}"), path));
    }
    let mut table = String::from(
        "/// The site: (URL path, contents).\npub static FILES: &[(&str, &[u8])] = &[\n",
    );
    for (url, path) in &files {
        writeln!(table, "    ({url:?}, include_bytes!({:?})),", path.display().to_string())
            .unwrap();
    }
    table.push_str("];\n");
    std::fs::write(out.join("site.rs"), table).unwrap();
}
