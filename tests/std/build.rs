fn main() {
    libos_build::link_std_guest();
    // C code that calls the C library as C programs do (std-clib): built
    // as a -sys crate builds its C, with the host's cc.
    println!("cargo:rerun-if-changed=c/clib.c");
    cc::Build::new().file("c/clib.c").warnings(true).compile("stdguest_clib");
}
