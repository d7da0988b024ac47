//! A "new version" that panics as it starts: the upgrade tests put it where
//! the server's executable was, as a broken deploy would.

fn main() {
    panic!("this build cannot start");
}
