//! Link the component with a 128 KiB stack instead of the toolchain's 1 MiB.
//!
//! Spin's pooling allocator zeroes an instance's linear memory (up to 2 MiB of it) when the
//! instance ends, and Spin starts one instance per request: the unused megabyte of stack was
//! zeroed after every request. The deepest path (JSON at its nesting limit, formatting) uses a
//! small fraction of 128 KiB; a stack overflow is a trap in WebAssembly, never corruption,
//! because the stack sits below the data (`--stack-first`).
fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=-zstack-size=131072");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
