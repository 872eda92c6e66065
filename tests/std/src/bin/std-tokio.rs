//! tokio under libos-std: probe.

libos_std::app!();

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        println!("slept");
    });
}
