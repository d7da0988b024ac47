//! Builds an `Upgrader` from the upgrade variables it was started with
//! (as a new process of an upgrade does), prints the outcome, then the
//! descriptors it still has open: the hand-over test's probe for
//! descriptors left open when adoption fails part-way.

use seaworthy_listener::upgrade::Upgrader;
use seaworthy_shutdown::Shutdown;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let shutdown = Shutdown::builder().signals([]).build().expect("a shutdown");
        match Upgrader::builder().signal(None).build(&shutdown.handle()) {
            Ok(_) => println!("built"),
            Err(err) => println!("error: {err}"),
        }
    });
    drop(runtime);
    // Without the listing's own descriptor (it takes the lowest free
    // number, perhaps one just closed).
    let mut open: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
        .filter(|entry| {
            std::fs::read_link(entry.path()).is_ok_and(|target| !target.ends_with("fd"))
        })
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    open.sort();
    println!("open: {}", open.join(","));
}
