fn main() {
    libos_build::link_std_guest();
}
