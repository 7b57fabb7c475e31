//! Rebuild when a migration is added or changed: `sqlx::migrate!` embeds the files, and
//! Cargo does not otherwise know that they are inputs of this crate.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
